//! Helpers for the tests that run the real `sesame` binary, or serve the
//! app in the test's own process.
#![allow(dead_code)]

use sesame_server::App;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An app served by this process on a free loopback port until stopped.
pub struct Served {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Served {
    pub async fn start(app: App) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(listener, async {
            let _ = stopped.await;
        }));
        Self { addr, stop, task }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down as on SIGTERM (in-flight requests finish) and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

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
