//! What xfed persists, behind an interface a PostgreSQL backend can implement later.
