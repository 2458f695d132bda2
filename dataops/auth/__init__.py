"""Users, roles and hashed API tokens."""
