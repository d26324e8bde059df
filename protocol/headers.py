"""HTTP headers of the protocol beyond the seed's `x-api-key`."""

# The server's database identity: on every answer; sent by an agent with the identity it
# synced with, so a server on another database refuses (409 database_changed) before
# applying anything. See server/identity.py and agent/sync/client.py.
DATABASE_HEADER = "x-pdvsync-database"
