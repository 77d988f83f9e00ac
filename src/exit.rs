//! Exit codes, decided in one place: 0 done, 1 failed, 2 bad usage, 3 stopped early and
//! resumable, 130 aborted by a second SIGINT (see [`crate::interrupt`]).

use crate::stage::Outcome;

/// Exit code of an immediate abort on a second SIGINT (128 + SIGINT).
pub const ABORTED: u8 = 130;

/// A mistake in how s3tally was called (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code of a command's result. An error is printed once, with its causes; a broken
/// pipe on standard output (`s3tally dump | head`) is not an error.
#[must_use]
pub fn code(result: &anyhow::Result<Outcome>) -> u8 {
    match result {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Failed) => 1,
        Ok(Outcome::Stopped) => 3,
        Err(error) if is_broken_pipe(error) => 0,
        Err(error) => {
            eprintln!("error: {}", describe(error));
            if error.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

/// An error and its causes on one line, each cause once: libraries often give a cause whose text
/// is already in the message (rusqlite's `database disk image is malformed`, a wrapped I/O error).
pub(crate) fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        // a cause that only prefixes the same words (`Error code 14: unable to open ...`)
        let words = said.rsplit(": ").next().unwrap_or(&said);
        if said.is_empty() || text.contains(&said) || text.contains(words) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

/// Whether an error is a write to a closed pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::other(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
        let error = anyhow::Error::from(io).context("cannot create salt.key");
        assert_eq!(
            describe(&error),
            "cannot create salt.key: entity already exists"
        );
        let sqlite = anyhow::anyhow!("Error code 14: unable to open database file")
            .context("store s3tally.sqlite: unable to open database file");
        assert_eq!(
            describe(&sqlite),
            "store s3tally.sqlite: unable to open database file"
        );
        let plain = anyhow::anyhow!("disk full").context("writing ds1/by_day.tsv");
        assert_eq!(describe(&plain), "writing ds1/by_day.tsv: disk full");
    }

    #[test]
    fn each_ending_has_its_code() {
        assert_eq!(code(&Ok(Outcome::Done)), 0);
        assert_eq!(code(&Ok(Outcome::Failed)), 1);
        assert_eq!(code(&Ok(Outcome::Stopped)), 3);
        assert_eq!(code(&Err(UsageError("bad".into()).into())), 2);
        assert_eq!(code(&Err(anyhow::anyhow!("broken"))), 1);
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(code(&Err(anyhow::Error::from(pipe).context("writing"))), 0);
    }
}
