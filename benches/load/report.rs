//! The one table the load bench prints, and how its figures are written.

use std::time::Duration;

/// One scenario's figures; `None` prints as `-`.
#[derive(Default)]
pub struct Row {
    pub scenario: String,
    pub rate: Option<f64>,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub p999: Option<Duration>,
    pub errors: Option<u64>,
    /// Gateway CPU seconds per 10,000 requests.
    pub cpu_per_10k: Option<f64>,
    pub peak_rss: Option<u64>,
    /// The same load straight at the upstream (the ceiling).
    pub upstream_rate: Option<f64>,
    pub note: String,
}

const HEADER: [&str; 11] = [
    "scenario",
    "req/s",
    "p50",
    "p99",
    "p99.9",
    "errors",
    "CPU s/10k",
    "peak RSS",
    "upstream req/s",
    "ratio",
    "note",
];

impl Row {
    fn cells(&self) -> [String; 11] {
        let ratio = match (self.rate, self.upstream_rate) {
            (Some(rate), Some(ceiling)) if ceiling > 0.0 => format!("{:.2}", rate / ceiling),
            _ => "-".into(),
        };
        [
            self.scenario.clone(),
            opt(self.rate.map(rate)),
            opt(self.p50.map(latency)),
            opt(self.p99.map(latency)),
            opt(self.p999.map(latency)),
            opt(self.errors.map(|e| e.to_string())),
            opt(self.cpu_per_10k.map(|c| format!("{c:.2}"))),
            opt(self.peak_rss.map(mib)),
            opt(self.upstream_rate.map(rate)),
            ratio,
            self.note.clone(),
        ]
    }
}

fn opt(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".into())
}

pub fn rate(per_second: f64) -> String {
    if per_second >= 100.0 {
        format!("{per_second:.0}")
    } else {
        format!("{per_second:.1}")
    }
}

pub fn latency(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else {
        format!("{:.2} ms", micros / 1000.0)
    }
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A Markdown table, so a run can be pasted into the README as is.
pub fn print(rows: &[Row]) {
    let cells: Vec<[String; 11]> = rows.iter().map(Row::cells).collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(&HEADER.map(str::to_owned));
    line(&widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(row);
    }
}
