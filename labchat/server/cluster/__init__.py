"""Several relays, one chat: rooms, presence and accounts shared through NATS JetStream.

Only with `labchat-server --cluster URL[,URL...]`; without it nothing here is imported and the single
embedded SQLite server is what runs. docs/cluster.md is the operator's guide and says which guarantee
rests on which JetStream feature; names.py holds every subject, stream and bucket name in one place.
"""
