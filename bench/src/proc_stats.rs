//! Broker resource use from Linux /proc: CPU time (utime+stime of
//! /proc/PID/stat) around the run and peak RSS (VmHWM of /proc/PID/status).

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct BrokerStats {
    pub pid: u32,
    pub cpu_seconds: f64,
    /// Payload bytes the figure is normalised by (produced, or consumed in consume mode).
    pub payload_bytes: u64,
    pub cpu_seconds_per_gb: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
}

/// utime + stime in clock ticks from the text of /proc/PID/stat. The
/// command name may contain spaces and parentheses, so fields are counted
/// from the last ')'.
pub fn parse_stat_ticks(stat: &str) -> Result<u64> {
    let rest = &stat[stat.rfind(')').ok_or_else(|| anyhow!("malformed stat"))? + 1..];
    // After ")": state is field 3; utime and stime are fields 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| -> Result<u64> {
        f.get(i - 3)
            .ok_or_else(|| anyhow!("stat too short"))?
            .parse()
            .context("stat field")
    };
    Ok(get(14)? + get(15)?)
}

/// VmHWM in bytes from the text of /proc/PID/status.
pub fn parse_vmhwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(parse_stat_ticks(&stat)? as f64 / hz)
}

pub struct BrokerSampler {
    pid: u32,
    cpu_start: f64,
}

impl BrokerSampler {
    pub fn start(pid: u32) -> Result<BrokerSampler> {
        Ok(BrokerSampler {
            pid,
            cpu_start: cpu_seconds(pid)?,
        })
    }

    pub fn finish(&self, payload_bytes: u64) -> Result<BrokerStats> {
        let cpu = cpu_seconds(self.pid)? - self.cpu_start;
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        Ok(BrokerStats {
            pid: self.pid,
            cpu_seconds: cpu,
            payload_bytes,
            cpu_seconds_per_gb: (payload_bytes > 0).then(|| cpu / (payload_bytes as f64 / 1e9)),
            peak_rss_bytes: parse_vmhwm(&status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_name() {
        let stat = "1234 (shard line) worker) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat).unwrap(), 325);
        assert!(parse_stat_ticks("garbage").is_err());
    }

    #[test]
    fn parses_vmhwm() {
        let status = "Name:\tshardline\nVmPeak:\t  999 kB\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vmhwm(status), Some(2 * 1024 * 1024));
        assert_eq!(parse_vmhwm("Name: x\n"), None);
    }

    #[test]
    fn samples_own_process() {
        let s = BrokerSampler::start(std::process::id()).unwrap();
        let st = s.finish(2_000_000_000).unwrap();
        assert!(st.cpu_seconds >= 0.0);
        assert!(st.peak_rss_bytes.unwrap() > 0);
        assert_eq!(st.payload_bytes, 2_000_000_000);
    }
}
