//! `cryptoid-agent`: not yet a daemon; prints its version and exits.

fn main() {
    println!("cryptoid-agent {}", cryptoid_agent::VERSION);
}
