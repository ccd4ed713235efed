//! The one way Corral runs a host command. A failure carries the command line, the exit
//! status and both output streams, so a log line says exactly what went wrong.

use std::ffi::OsStr;
use std::process::{ExitStatus, Output, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("could not start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): stderr: {stderr} stdout: {stdout}")]
    Failed { command: String, status: ExitStatus, stdout: String, stderr: String },
}

fn render(program: &OsStr, args: &[&OsStr]) -> String {
    let mut s = program.to_string_lossy().into_owned();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Builds a `tokio::process::Command`; the only place allowed to call `Command::new`.
#[allow(clippy::disallowed_methods)]
pub fn command(program: impl AsRef<OsStr>) -> tokio::process::Command {
    tokio::process::Command::new(program)
}

/// Same for code that cannot be async (the CLI before a runtime exists, build scripts).
#[allow(clippy::disallowed_methods)]
pub fn std_command(program: impl AsRef<OsStr>) -> std::process::Command {
    std::process::Command::new(program)
}

/// Runs `program args...` to completion, failing unless it exits 0.
pub async fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Output, ExecError> {
    run_with_stdin(program, args, None).await
}

pub async fn run_with_stdin<S: AsRef<OsStr>>(program: &str, args: &[S], stdin: Option<&[u8]>) -> Result<Output, ExecError> {
    use tokio::io::AsyncWriteExt;
    let argv: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let line = render(OsStr::new(program), &argv);
    let mut cmd = command(program);
    cmd.args(&argv)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ExecError::Spawn { command: line.clone(), source })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).await.map_err(|source| ExecError::Spawn { command: line.clone(), source })?;
    }
    let out = child.wait_with_output().await.map_err(|source| ExecError::Spawn { command: line.clone(), source })?;
    check(line, out)
}

/// Blocking variant.
pub fn run_blocking<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Output, ExecError> {
    let argv: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let line = render(OsStr::new(program), &argv);
    let out = std_command(program)
        .args(&argv)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ExecError::Spawn { command: line.clone(), source })?;
    check(line, out)
}

fn check(command: String, out: Output) -> Result<Output, ExecError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(ExecError::Failed {
            command,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failure_carries_command_and_output() {
        let err = run("sh", &["-c", "echo out; echo err >&2; exit 3"]).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("err") && msg.contains("out"), "{msg}");
        assert!(msg.contains('3'), "{msg}");
    }

    #[tokio::test]
    async fn stdin_is_fed() {
        let out = run_with_stdin("cat", &[] as &[&str], Some(b"hello")).await.unwrap();
        assert_eq!(out.stdout, b"hello");
    }
}
