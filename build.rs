//! Rebuilds the binary when a web page changes: `web/` is embedded into it
//! (`src/http/web.rs`), and the embedding macro alone does not tell cargo
//! which files it read.

fn main() {
    println!("cargo:rerun-if-changed=web");
}
