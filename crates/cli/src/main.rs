//! The `phyvae` command-line tool.

fn main() {}
