//! Benchmark helper for `bench/ssh-transfer`: uploads then downloads a file
//! with sqlmorph's SSH transport and prints the throughput.
//!
//! `cargo run --release --example ssh_transfer -- URL KEY KNOWN_HOSTS LOCAL DOWNLOAD`
use std::time::Instant;

use sqlmorph::target::ssh::{Remote, SshOptions, SshUrl};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, known_hosts, local, download] = args.as_slice() else {
        anyhow::bail!("usage: ssh_transfer URL KEY KNOWN_HOSTS LOCAL DOWNLOAD");
    };
    let url: SshUrl = url.parse()?;
    let opts = SshOptions {
        identity: Some(key.into()),
        known_hosts: known_hosts.into(),
        ..SshOptions::default()
    };
    let remote = Remote::connect(&url, &opts)?;
    #[allow(clippy::cast_precision_loss)]
    let mb = std::fs::metadata(local)?.len() as f64 / 1e6;
    let t = Instant::now();
    remote.upload(local.as_ref(), &url.path, 0o600, false)?;
    let up = t.elapsed().as_secs_f64();
    let t = Instant::now();
    remote.download(&url.path, download.as_ref(), false)?;
    let down = t.elapsed().as_secs_f64();
    println!(
        "sqlmorph upload   {mb:.0} MB {up:6.2} s {:5.0} MB/s",
        mb / up
    );
    println!(
        "sqlmorph download {mb:.0} MB {down:6.2} s {:5.0} MB/s",
        mb / down
    );
    Ok(())
}
