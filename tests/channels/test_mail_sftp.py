"""Paper mail to a print house that takes batches over SFTP (asyncssh, optional)."""

from __future__ import annotations

import pytest
from test_mail import HOME, Post

from channels.printhouse import SftpDropBox
from simulator.printhouse import check

asyncssh = pytest.importorskip("asyncssh")


@pytest.fixture
async def sftp_server(tmp_path):
    root = tmp_path / "sftp-root"
    (root / "printhouse").mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "id_ed25519").write_bytes(client_key.export_private_key())
    (tmp_path / "id_ed25519").chmod(0o600)
    (tmp_path / "authorized_keys").write_bytes(client_key.export_public_key())
    server = await asyncssh.listen(
        "127.0.0.1", 0, server_host_keys=[host_key], authorized_client_keys=str(tmp_path / "authorized_keys"),
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()), allow_scp=False)
    port = server.sockets[0].getsockname()[1]
    (tmp_path / "known_hosts").write_bytes(f"[127.0.0.1]:{port} ".encode() + host_key.export_public_key())
    yield root / "printhouse", port
    server.close()
    await server.wait_closed()


async def test_batches_go_over_sftp_and_answers_come_back(tmp_path, redis, sftp_server):
    folder, port = sftp_server
    post = Post(tmp_path, redis)
    await post.letter("r1", HOME)
    box = SftpDropBox(f"sftp://printer@127.0.0.1:{port}/printhouse", str(tmp_path / "id_ed25519"),
                      str(tmp_path / "known_hosts"))
    try:
        [batch_id] = await post.mail.close_batches(box)
        letters, problems = check(folder / "inbox" / batch_id)
        assert problems == [] and (folder / "inbox" / batch_id / "READY").is_file()
        (folder / "outbox").mkdir()
        (folder / "outbox" / f"{batch_id}.response.csv").write_text(
            f"letter_id,status,at\n{letters[0].letter_id},posted,2025-07-01T00:00:00Z\n")
        assert await post.mail.read_answers(box) == 1
        assert not any((folder / "outbox").iterdir())
    finally:
        await box.close()
    assert post.statuses() == [("r1", "sent", ""), ("r1", "posted", "")]


async def test_an_sftp_server_we_do_not_know_is_refused(tmp_path, redis, sftp_server):
    _, port = sftp_server
    (tmp_path / "other_hosts").write_bytes(
        f"[127.0.0.1]:{port} ".encode() + asyncssh.generate_private_key("ssh-ed25519").export_public_key())
    box = SftpDropBox(f"sftp://printer@127.0.0.1:{port}/printhouse", str(tmp_path / "id_ed25519"),
                      str(tmp_path / "other_hosts"))
    with pytest.raises((asyncssh.Error, OSError)):
        await box.answers()
    await box.close()
