//! A `vendorwall run` process attached to a test cgroup, with its JSON events collected and its
//! readiness taken from sd_notify messages on a socket the test provides.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    os::unix::net::UnixDatagram,
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::TempDir;

/// How long the daemon may take to load, fill and attach.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Daemon {
    child: Child,
    events: Receiver<Value>,
    notify: UnixDatagram,
    /// Every sd_notify datagram received so far.
    notifications: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
    /// What the daemon wrote on stderr so far, line by line as it comes.
    stderr_so_far: std::sync::Arc<std::sync::Mutex<String>>,
    _dir: TempDir,
}

impl Daemon {
    /// Starts `vendorwall <args>` (a `run` command line) and waits for READY=1.
    pub fn start(args: &[String]) -> Self {
        Self::start_wrapped(&[], args)
    }

    /// Like [`Self::start`], with `wrapper` (a program and its arguments, e.g. `setpriv ...
    /// --`) in front of the vendorwall binary.
    pub fn start_wrapped(wrapper: &[String], args: &[String]) -> Self {
        let dir = TempDir::new("daemon");
        let socket_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&socket_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("socket timeout");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(crate::vendorwall_bin());
                cmd
            }
            None => Command::new(crate::vendorwall_bin()),
        };
        cmd.args(args)
            .env("NOTIFY_SOCKET", &socket_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn vendorwall");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut stderr = child.stderr.take().expect("stderr piped");
        let (tx, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("daemon wrote a non-JSON line {line:?}: {err}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr_so_far = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr_so_far.clone();
        let stderr = std::thread::spawn(move || {
            let mut reader = BufReader::new(&mut stderr);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Ok(mut text) = sink.lock() {
                    text.push_str(&line);
                }
                line.clear();
            }
            let _ = reader.read_to_string(&mut line);
            sink.lock().map(|text| text.clone()).unwrap_or_default()
        });
        let mut daemon = Self {
            child,
            events,
            notify,
            notifications: Vec::new(),
            stderr,
            stderr_so_far,
            _dir: dir,
        };
        daemon.wait_for_notify("READY=1", READY_TIMEOUT);
        daemon
    }

    /// Waits until an sd_notify datagram contains `needle`; panics (with the daemon's stderr) if
    /// the daemon exits first or the time runs out.
    pub fn wait_for_notify(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let found = message.lines().any(|l| l == needle);
                self.notifications.push(message);
                if found {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("vendorwall exited early ({status}) before {needle}");
            }
        }
        panic!("vendorwall did not send {needle} within {timeout:?}");
    }

    /// What the daemon has written on stderr so far (it keeps running).
    pub fn stderr_so_far(&self) -> String {
        self.stderr_so_far
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// Every sd_notify datagram received by the waits so far.
    pub fn notifications(&self) -> &[String] {
        &self.notifications
    }

    /// The next event matching `pred`, skipping others; panics after `timeout`.
    pub fn expect_event(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if pred(&event) => return event,
                Ok(event) => seen.push(event),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no matching event within {timeout:?}; other events: {seen:#?}")
                }
            }
        }
    }

    /// Every event that arrives within `window`.
    pub fn events_within(&self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        let mut events = Vec::new();
        while let Ok(event) = self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            events.push(event);
        }
        events
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the daemon with SIGKILL (no clean-up of any kind) and waits for it.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        stderr.join().unwrap_or_default()
    }

    /// Sends SIGHUP (reload).
    pub fn hangup(&self) {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    }

    /// Sends SIGTERM and returns the exit status and stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let status = self.terminate();
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        (status, stderr.join().unwrap_or_default())
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        // A guard against a hung daemon, not a latency check: the daemon's stop is bounded by
        // its drain budget (1 s) and its sinks' (3 s), which take up to 6 s under emulation.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait for vendorwall")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}
