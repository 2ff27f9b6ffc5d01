//! Configuration: the TOML file of DESIGN.md section 4, parsed and validated.
