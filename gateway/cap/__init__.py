"""CAP 1.2, the OASIS Common Alerting Protocol, in and out of the gateway.

- `parse.py`: a posted CAP document -> our JSON alert, every problem named.
- `emit.py`: one of our alerts -> a CAP document.
- `areas.py`: CAP <area> <-> `audience.areas` (polygons, circles, geocodes).
- `vocabulary.py`: CAP's namespace, enumerations, element structure, dateTime.

Pure logic: no Redis, no HTTP. Import from the module that does the job.
"""
