"""The relay server: room logic, storage, the asyncio transport and the command line."""
