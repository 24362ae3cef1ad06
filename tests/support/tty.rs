//! A command running at a real pseudo-terminal: its own tmux server (socket
//! in the test's workspace), killed when dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Tty {
    socket: PathBuf,
}

impl Tty {
    /// Starts `command` (a shell command line) in `dir`.
    pub fn start(dir: &Path, command: &str) -> Tty {
        assert!(
            std::process::Command::new("tmux")
                .arg("-V")
                .output()
                .is_ok(),
            "tmux is not installed: run the suite with scripts/test, which installs it"
        );
        let tty = Tty {
            socket: dir.join("tty.sock"),
        };
        let ok = tty
            .tmux(&[
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "200",
                "-y",
                "60",
                "-c",
            ])
            .arg(dir)
            .arg(format!("{command}; echo EXIT=$?; sleep 60"))
            .status()
            .unwrap();
        assert!(ok.success(), "tmux did not start");
        tty
    }

    fn tmux(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(args);
        c
    }

    /// The visible screen plus scrollback.
    pub fn screen(&self) -> String {
        let out = self
            .tmux(&["capture-pane", "-p", "-S", "-1000", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (30 s at most) until the screen contains `text`.
    pub fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {text:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types a line and presses Enter.
    pub fn line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text])
            .status()
            .unwrap();
        self.tmux(&["send-keys", "-t", "t", "Enter"])
            .status()
            .unwrap();
    }
}

impl Tty {
    /// The screen plus scrollback with the colours the program wrote, as
    /// ANSI escape codes (`capture-pane -e`).
    pub fn screen_with_escapes(&self) -> String {
        let out = self
            .tmux(&["capture-pane", "-p", "-e", "-S", "-1000", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Presses keys by tmux name (`C-c`, `Enter`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args).status().unwrap();
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).status();
    }
}
