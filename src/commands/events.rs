//! `events [--stats] [--interval 5s] ID`: runc's event stream, one JSON object per line:
//! `{"type":"stats","id":ID,"data":{...}}` every interval and `{"type":"oom","id":ID}` on an
//! OOM. v1: an eventfd registered on memory.oom_control through cgroup.event_control (as
//! runc); v2 has no such interface, so the cumulative `oom_kill` counter of memory.events is
//! polled every 100 ms (also the v1 fallback when the registration fails).

use super::Global;
use crate::container::state::{Container, Op};
use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    typ: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

/// Go's time.ParseDuration for the common units ("5s", "100ms", "1m30s", "2h").
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || anyhow!("invalid duration {s:?}");
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        let r = &rest[n_end..];
        let u_end = r.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(r.len());
        let mult = match &r[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &r[u_end..];
    }
    if total <= 0.0 {
        bail!("duration interval must be greater than 0");
    }
    // from_secs_f64 panics on overflow: "99999999999999999999999h" is bad input, not a crash.
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Wait up to `t` for the eventfd; true when it fired (its counter is consumed).
fn eventfd_fired(efd: &OwnedFd, t: Duration) -> bool {
    let mut fds = [nix::poll::PollFd::new(efd.as_fd(), nix::poll::PollFlags::POLLIN)];
    let ms = u16::try_from(t.as_millis()).unwrap_or(u16::MAX);
    if !matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)), Ok(n) if n > 0) {
        return false;
    }
    let mut buf = [0u8; 8];
    nix::unistd::read(efd.as_raw_fd(), &mut buf).is_ok()
}

fn emit<T: Serialize>(e: &Event<T>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(e)?)?;
    out.flush()?;
    Ok(())
}

pub fn run(g: &Global, id: &str, once: bool, interval: &str) -> Result<i32> {
    let iv = parse_duration(interval)?;
    let c = Container::load(&g.root, id, false)?;
    c.status().require(Op::Events, id)?;
    let cg = &c.state.cgroup;
    let stats_event = || Event {
        typ: "stats",
        id,
        data: Some(cg.stats()),
    };
    if once {
        emit(&stats_event())?;
        return Ok(0);
    }
    let efd = cg.oom_eventfd();
    let mut ooms = cg.oom_kills();
    let mut next = Instant::now();
    let tick = Duration::from_millis(100).min(iv);
    let oom = || {
        emit(&Event::<()> {
            typ: "oom",
            id,
            data: None,
        })
    };
    loop {
        match &efd {
            // The eventfd also fires when the cgroup is removed: that is no OOM.
            Some((e, dir)) => {
                if eventfd_fired(e, tick) && dir.exists() {
                    oom()?;
                }
            }
            None => {
                let n = cg.oom_kills();
                if n > ooms {
                    ooms = n;
                    oom()?;
                }
            }
        }
        if !c.status().allows(Op::Events) {
            return Ok(0);
        }
        if Instant::now() >= next {
            emit(&stats_event())?;
            next += iv;
        }
        if efd.is_none() {
            std::thread::sleep(tick);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5").is_err() && parse_duration("").is_err() && parse_duration("0s").is_err());
    }

    #[test]
    fn huge_duration_is_an_error_not_a_panic() {
        assert!(parse_duration("99999999999999999999999h").is_err());
        assert!(parse_duration(&format!("{}s", "9".repeat(400))).is_err());
    }
}
