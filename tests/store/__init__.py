"""The storage adapters against real SQLite files and a real PostgreSQL: the repository contract, migrations."""
