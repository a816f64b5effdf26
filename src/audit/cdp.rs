//! A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`.
//!
//! Chromium reads commands on its fd 3 and writes answers and events on its fd 4, each
//! message a NUL-terminated JSON document. One reader thread turns what Chromium writes
//! into [`Message`]s on a channel; the caller sends commands and pumps that channel, so
//! events (such as a paused request that must be answered before a navigation can
//! finish) are handled while a command is waiting for its answer. Sessions are
//! flattened: a command for a page carries the `sessionId` of `Target.attachToTarget`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// How long Chromium gets to answer its first command: a cold start on a busy machine
/// takes a few seconds.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The names tried on `PATH` when no `--chromium` is given, in this order.
pub const CHROMIUM_NAMES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// Why Chromium could not be started or stopped answering.
#[derive(Debug, thiserror::Error)]
pub enum ChromiumError {
    /// No `--chromium` was given and none of [`CHROMIUM_NAMES`] is on `PATH`.
    #[error("no Chromium found: none of chromium, chromium-browser, google-chrome is on PATH; install one or pass --chromium PATH")]
    NotFound,
    /// The temporary profile directory or the pipes could not be made.
    #[error("cannot prepare Chromium's {what}: {source}")]
    Prepare {
        /// The profile directory or the DevTools pipes.
        what: &'static str,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The executable could not be run.
    #[error("cannot start Chromium at {path}: {source}")]
    Spawn {
        /// The executable.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Chromium exited or closed the DevTools pipe.
    #[error("Chromium at {path} exited or closed its DevTools pipe{stderr}")]
    Exited {
        /// The executable.
        path: PathBuf,
        /// The last lines Chromium wrote to stderr, prefixed with `: `, or empty.
        stderr: String,
    },
    /// A command got no answer in time.
    #[error("Chromium did not answer {method} within {} s", timeout.as_secs_f32())]
    Timeout {
        /// The DevTools method.
        method: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// A command the audit needs was refused.
    #[error("Chromium refused {method}: {message}")]
    Refused {
        /// The DevTools method.
        method: String,
        /// Chromium's error message.
        message: String,
    },
    /// The command could not be written to the pipe.
    #[error("cannot write to Chromium's DevTools pipe: {0}")]
    Write(std::io::Error),
}

/// What Chromium wrote: the answer to a command, or an event.
#[derive(Debug)]
pub enum Message {
    /// The answer to the command with this id: its result, or Chromium's error message.
    Response {
        /// The command's id.
        id: u64,
        /// The result, or the error message.
        result: Result<Value, String>,
    },
    /// An event, with the session it belongs to (none for the browser itself).
    Event {
        /// The flattened session, if any.
        session: Option<String>,
        /// E.g. `Fetch.requestPaused`.
        method: String,
        /// The event's parameters.
        params: Value,
    },
}

/// The Chromiums (process group, profile) and other helper processes (process group)
/// running now, for [`stop_chromium_on_signals`].
static RUNNING: Mutex<Vec<(i32, Option<PathBuf>)>> = Mutex::new(Vec::new());

/// Has the signal handler of [`stop_chromium_on_signals`] also kill this process
/// group (a helper process, such as `init`'s temporary proxy); call
/// [`forget_process_group`] before reaping it.
pub fn stop_process_group_on_signals(group: i32) {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner()).push((group, None));
}

/// Undoes [`stop_process_group_on_signals`] (before the process is reaped, so that its
/// id cannot have been reused when a signal's clean-up kills the group).
pub fn forget_process_group(group: i32) {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner()).retain(|(g, _)| *g != group);
}

/// Makes SIGINT, SIGTERM and SIGHUP stop every Chromium this process runs and remove
/// its profile before the process exits with 128 + the signal, as a Ctrl-C would
/// otherwise leave the browser running and its profile behind. The handler only wakes
/// a thread of its own, which does the clean-up: call it before starting Chromium.
pub fn stop_chromium_on_signals() -> std::io::Result<()> {
    // signal-hook's handler only writes to a pipe; the clean-up runs on this thread,
    // where killing and removing directories is allowed.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
            for (group, profile) in running.iter() {
                // A group whose leader is still our unreaped child, as in Drop.
                kill_group(*group);
                if let Some(profile) = profile {
                    let _ = std::fs::remove_dir_all(profile);
                }
            }
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

/// SIGKILLs the process group `group` (a group that is already gone is ignored).
pub fn kill_group(group: i32) {
    // SAFETY: kill has no memory effects; a group that is already gone is ESRCH.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

/// A running headless Chromium with its DevTools pipe, its own temporary profile and
/// its own process group. Dropping it kills the whole group and removes the profile.
pub struct Chromium {
    child: Child,
    path: PathBuf,
    commands: std::io::PipeWriter,
    incoming: Receiver<Message>,
    next_id: u64,
    /// Removed when dropped, after the processes that write to it are gone.
    profile: tempfile::TempDir,
}

impl Chromium {
    /// The executable to run: `explicit`, or the first of [`CHROMIUM_NAMES`] on `PATH`.
    pub fn find(explicit: Option<&Path>) -> Result<PathBuf, ChromiumError> {
        if let Some(path) = explicit {
            return Ok(path.to_path_buf());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        CHROMIUM_NAMES
            .iter()
            .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
            .find(|candidate| is_executable(candidate))
            .ok_or(ChromiumError::NotFound)
    }

    /// Starts Chromium headless with `args` added to the fixed flags, and waits until it
    /// answers on the pipe.
    pub fn launch(path: &Path, args: &[String]) -> Result<Chromium, ChromiumError> {
        let profile = tempfile::Builder::new()
            .prefix("isp-audit-")
            .tempdir()
            .map_err(|source| ChromiumError::Prepare { what: "temporary profile", source })?;
        let pipes = |source| ChromiumError::Prepare { what: "DevTools pipes", source };
        let (their_commands, commands) = std::io::pipe().map_err(pipes)?;
        let (events, their_events) = std::io::pipe().map_err(pipes)?;
        // Chromium's ends, numbered above 3 and 4 so that placing them there cannot
        // overwrite one with the other; close-on-exec, so only the copies on 3 and 4
        // reach Chromium.
        let their_commands = high_fd(their_commands.into()).map_err(pipes)?;
        let their_events = high_fd(their_events.into()).map_err(pipes)?;
        let stderr = File::create(profile.path().join("stderr.log"))
            .map_err(|source| ChromiumError::Prepare { what: "temporary profile", source })?;
        let (read_fd, write_fd) = (their_commands.as_raw_fd(), their_events.as_raw_fd());
        let mut command = Command::new(path);
        command
            .args([
                "--headless=new",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-quic",
                "--mute-audio",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // Its own group: renderers and helpers are killed with it.
            .process_group(0);
        // SAFETY: between fork and exec only dup2 runs, which is async-signal-safe; the
        // descriptors stay open in the parent until spawn returns.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(read_fd, 3) < 0 || libc::dup2(write_fd, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|source| ChromiumError::Spawn { path: path.to_path_buf(), source })?;
        drop((their_commands, their_events));
        if let Ok(group) = i32::try_from(child.id()) {
            RUNNING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((group, Some(profile.path().to_path_buf())));
        }
        let (sender, incoming) = mpsc::channel();
        std::thread::spawn(move || read_messages(events, sender));
        let mut chromium =
            Chromium { child, path: path.to_path_buf(), commands, incoming, next_id: 0, profile };
        chromium.call(None, "Browser.getVersion", json!({}), STARTUP_TIMEOUT)?;
        Ok(chromium)
    }

    /// Sends a command without waiting; returns its id.
    pub fn send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<u64, ChromiumError> {
        self.next_id += 1;
        let mut message = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = Value::String(session.to_string());
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.commands.write_all(&bytes).map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => self.exited(),
            _ => ChromiumError::Write(e),
        })?;
        Ok(self.next_id)
    }

    /// The next message, or `None` when `deadline` passes first.
    pub fn next(&mut self, deadline: Instant) -> Result<Option<Message>, ChromiumError> {
        match self.incoming.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(message) => Ok(Some(message)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(self.exited()),
        }
    }

    /// Sends a command and waits for its answer, dropping the events that come first:
    /// for the browser-level commands, before any page is open.
    pub fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ChromiumError> {
        let id = self.send(session, method, params)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline)? {
                Some(Message::Response { id: got, result }) if got == id => {
                    return result.map_err(|message| ChromiumError::Refused {
                        method: method.to_string(),
                        message,
                    })
                }
                Some(_) => {}
                None => return Err(ChromiumError::Timeout { method: method.to_string(), timeout }),
            }
        }
    }

    /// The error for a Chromium that went away, with the end of what it wrote to stderr.
    pub fn exited(&self) -> ChromiumError {
        let text =
            std::fs::read_to_string(self.profile.path().join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n  ");
        ChromiumError::Exited {
            path: self.path.clone(),
            stderr: if tail.is_empty() { String::new() } else { format!(":\n  {tail}") },
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The group is Chromium's own pid; it is still our unreaped child here, so the
        // id cannot have been reused. It leaves RUNNING (under the lock a signal's
        // clean-up holds) before it is reaped, for the same reason.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            forget_process_group(pid);
            kill_group(pid);
        }
        let _ = self.child.wait();
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A close-on-exec copy of `fd` numbered 10 or above.
fn high_fd(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an open descriptor returns a new descriptor we own.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` was just returned by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// The reader thread: NUL-separated JSON from Chromium, until the pipe closes (which
/// closes the channel, so the caller learns that Chromium went away).
fn read_messages(events: std::io::PipeReader, sender: mpsc::Sender<Message>) {
    let mut reader = BufReader::new(events);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(0, &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buffer.last() == Some(&0) {
            buffer.pop();
        }
        let Ok(value) = serde_json::from_slice::<Value>(&buffer) else { continue };
        if sender.send(parse(value)).is_err() {
            return;
        }
    }
}

fn parse(mut value: Value) -> Message {
    if let Some(id) = value.get("id").and_then(Value::as_u64) {
        let result = match value.get_mut("error") {
            Some(error) => Err(error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string()),
            None => Ok(value.get_mut("result").map(Value::take).unwrap_or(Value::Null)),
        };
        return Message::Response { id, result };
    }
    Message::Event {
        session: value.get("sessionId").and_then(Value::as_str).map(str::to_string),
        method: value.get("method").and_then(Value::as_str).unwrap_or_default().to_string(),
        params: value.get_mut("params").map(Value::take).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_answers_or_events() {
        match parse(json!({"id": 7, "result": {"a": 1}})) {
            Message::Response { id: 7, result: Ok(r) } => assert_eq!(r["a"], 1),
            other => panic!("{other:?}"),
        }
        match parse(json!({"id": 8, "error": {"code": -32000, "message": "nope"}})) {
            Message::Response { id: 8, result: Err(m) } => assert_eq!(m, "nope"),
            other => panic!("{other:?}"),
        }
        match parse(
            json!({"method": "Page.loadEventFired", "params": {"timestamp": 1}, "sessionId": "S"}),
        ) {
            Message::Event { session: Some(s), method, .. } => {
                assert_eq!((s.as_str(), method.as_str()), ("S", "Page.loadEventFired"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_explicit_path_wins_and_a_missing_chromium_is_named() {
        assert_eq!(
            Chromium::find(Some(Path::new("/opt/chrome"))).unwrap(),
            PathBuf::from("/opt/chrome")
        );
        let err =
            Chromium::launch(Path::new("/nonexistent/chromium"), &[]).err().expect("no such file");
        assert!(err.to_string().contains("/nonexistent/chromium"), "{err}");
    }
}
