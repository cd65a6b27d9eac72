//! Helpers for the tests that run the real `sesame` binary.

use std::path::PathBuf;
use std::process::Command;

/// The `sesame` binary of this target directory (built if missing).
pub fn sesame_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap(); // target/debug
    let bin = profile_dir.join("sesame");
    if !bin.exists() {
        let target_dir = profile_dir.parent().unwrap();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-q", "-p", "sesame-cli", "--target-dir"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p sesame-cli failed");
    }
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
