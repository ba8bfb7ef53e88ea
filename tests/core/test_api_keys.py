"""An agency's API key: checked on every request, in one round trip to Redis
once the key has been seen (an alert's accept waits on Redis once per round
trip), and refused at once when deleted or given with another secret."""

from __future__ import annotations

from gateway import keys
from gateway.agencies import authenticate, create_agency


class RoundTrips:
    """The real client, counting the round trips made through it."""

    def __init__(self, redis):
        self.redis, self.trips = redis, 0

    async def hmget(self, *args):
        self.trips += 1
        return await self.redis.hmget(*args)

    def pipeline(self, **kwargs):
        pipe = self.redis.pipeline(**kwargs)
        execute = pipe.execute

        async def counted(*args, **kw):
            self.trips += 1
            return await execute(*args, **kw)

        pipe.execute = counted
        return pipe


async def test_a_known_keys_request_is_checked_and_counted_in_one_round_trip(redis):
    agency, key = await create_agency(redis, "Harbour district", rate_per_s=10)
    assert (await authenticate(redis, key))[0].id == agency.id
    client = RoundTrips(redis)
    known, count = await authenticate(client, key)
    assert known.id == agency.id and known.rate_per_s == 10
    assert count == 2  # both requests are in the agency's window
    assert client.trips == 1


async def test_a_deleted_key_is_refused_at_once_though_it_was_used_before(redis):
    _, key = await create_agency(redis, "Harbour district")
    assert await authenticate(redis, key) is not None
    await redis.delete(keys.api_key(key.split("_")[1]))
    assert await authenticate(redis, key) is None


async def test_a_used_key_id_with_another_secret_is_refused(redis):
    _, key = await create_agency(redis, "Harbour district")
    assert await authenticate(redis, key) is not None
    assert await authenticate(redis, key[:-4] + "AAAA") is None
    assert await authenticate(redis, key) is not None
