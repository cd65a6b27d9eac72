//! Records the source revision for `sesame_build_info{revision}`: from
//! SESAME_REVISION when set (container builds have no .git), else git.
fn main() {
    let revision = std::env::var("SESAME_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        });
    println!(
        "cargo:rustc-env=SESAME_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=SESAME_REVISION");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
}
