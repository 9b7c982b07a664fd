//! REPORT.md: a header (machine, versions, the exact command), the goals table, one part per section,
//! and the SVG plots beside it in `benches/report/`.

use std::fmt::Write as _;
use std::path::Path;

use crate::BenchError;

/// Section ids in the order of the scenarios (1 capacity … 8 memory), micro-benchmarks last.
pub const REPORT_ORDER: [&str; 8] = [
    "capacity", "latency", "asr", "vad", "sip", "qa", "memory", "micro",
];

/// One figure compared with its goal (the closing table of the report).
#[derive(Debug, Clone)]
pub struct Goal {
    pub figure: String,
    pub goal: String,
    pub measured: String,
    /// `None` where the issue sets no goal ("report").
    pub met: Option<bool>,
    /// Where the report shows why a missed goal is missed (a profile, a breakdown).
    pub see: Option<String>,
}

impl Goal {
    pub fn new(figure: &str, goal: &str, measured: String, met: Option<bool>) -> Goal {
        Goal {
            figure: figure.into(),
            goal: goal.into(),
            measured,
            met,
            see: None,
        }
    }

    /// Points a missed goal at the part of the report that explains it.
    pub fn see(mut self, where_: &str) -> Goal {
        self.see = Some(where_.into());
        self
    }
}

/// What a section produced.
#[derive(Debug, Clone, Default)]
pub struct SectionOut {
    pub id: &'static str,
    pub title: &'static str,
    /// Markdown body (tables, notes).
    pub body: String,
    pub goals: Vec<Goal>,
    /// (file name, SVG text), written to `benches/report/`.
    pub plots: Vec<(String, String)>,
    /// The section could not run (tool missing, voxgate failed): shown instead of figures.
    pub error: Option<String>,
    pub seconds: f64,
}

/// A Markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", header.iter().map(|_| "---|").collect::<String>());
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

/// `value` with one decimal, or "–" when absent.
pub fn f1(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.1}"))
}

/// Everything the header needs.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub command: String,
    pub started: String,
    pub git: String,
    pub machine: String,
    pub load_before: String,
    pub versions: Vec<(String, String)>,
    pub quick: bool,
    pub minutes: f64,
}

/// Every section's goals, sections in report order.
fn ordered_goals(sections: &[SectionOut]) -> Vec<&Goal> {
    let rank = |id: &str| {
        REPORT_ORDER
            .iter()
            .position(|o| *o == id)
            .unwrap_or(usize::MAX)
    };
    let mut s: Vec<&SectionOut> = sections.iter().collect();
    s.sort_by_key(|s| rank(s.id));
    s.into_iter().flat_map(|s| s.goals.iter()).collect()
}

/// Writes REPORT.md and the plots; returns the report's path.
pub fn write(
    out_md: &Path,
    plots_dir: &Path,
    header: &Header,
    sections: &[SectionOut],
) -> Result<(), BenchError> {
    std::fs::create_dir_all(plots_dir).map_err(|e| BenchError::io(plots_dir, e))?;
    // Old plots of sections that ran this time are replaced; others stay referenced by nothing.
    let mut md = String::new();
    let _ = writeln!(md, "# voxgate benchmark report\n");
    if header.quick {
        let _ = writeln!(
            md,
            "> **Quick run** (`--quick`): short ladders and few calls, for checking the suite, not for planning.\n"
        );
    }
    let _ = writeln!(md, "- Command: `{}`", header.command);
    let _ = writeln!(
        md,
        "- Run: {} ({:.0} min), voxgate {}",
        header.started, header.minutes, header.git
    );
    let _ = writeln!(md, "- Machine: {}", header.machine);
    let _ = writeln!(
        md,
        "- Load average before the run: {} (the load generator runs on the same machine as voxgate)",
        header.load_before
    );
    if !header.versions.is_empty() {
        let _ = writeln!(md, "- Peers and tools:");
        for (k, v) in &header.versions {
            let _ = writeln!(md, "  - {k}: {v}");
        }
    }
    let _ = writeln!(
        md,
        "\nThe figures against the issue's goals close the report ([Figures against goals](#figures-against-goals))."
    );
    // The numbering, whatever order the sections ran in.
    let rank = |id: &str| {
        REPORT_ORDER
            .iter()
            .position(|o| *o == id)
            .unwrap_or(usize::MAX)
    };
    let mut ordered: Vec<&SectionOut> = sections.iter().collect();
    ordered.sort_by_key(|s| rank(s.id));
    for s in ordered {
        let _ = writeln!(md, "\n## {}\n", s.title);
        if let Some(e) = &s.error {
            let _ = writeln!(md, "**Not measured:** {e}\n");
        }
        md.push_str(&s.body);
        for (name, svg) in &s.plots {
            let path = plots_dir.join(name);
            std::fs::write(&path, svg).map_err(|e| BenchError::io(&path, e))?;
            let rel = format!("report/{name}");
            let _ = writeln!(md, "\n![{name}]({rel})");
        }
        let _ = writeln!(md, "\n<sub>section took {:.0} s</sub>", s.seconds);
    }
    let _ = writeln!(md, "\n## Figures against goals\n");
    let rows: Vec<Vec<String>> = ordered_goals(sections)
        .into_iter()
        .map(|g| {
            vec![
                g.figure.clone(),
                g.goal.clone(),
                g.measured.clone(),
                match g.met {
                    Some(true) => "**yes**".into(),
                    Some(false) => "**no**".into(),
                    None => "–".into(),
                },
            ]
        })
        .collect();
    md.push_str(&table(&["figure", "goal", "measured", "met"], &rows));
    let missed: Vec<&Goal> = ordered_goals(sections)
        .into_iter()
        .filter(|g| g.met == Some(false))
        .collect();
    if !missed.is_empty() {
        let _ = writeln!(md, "\nWhere the time goes for each missed goal:\n");
        for g in missed {
            let _ = writeln!(
                md,
                "- {}: {}",
                g.figure,
                g.see.as_deref().unwrap_or("no profile taken")
            );
        }
    }
    std::fs::write(out_md, md).map_err(|e| BenchError::io(out_md, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_a_separator_per_column() {
        let t = table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }

    #[test]
    fn report_lists_goals_errors_and_plots() {
        let dir = std::env::temp_dir().join(format!("vg-report-{}", std::process::id()));
        let sec = SectionOut {
            id: "x",
            title: "X",
            body: "body\n".into(),
            goals: vec![Goal::new("f", "≤ 1", "2".into(), Some(false))],
            plots: vec![("x.svg".into(), "<svg/>".into())],
            error: Some("tool missing".into()),
            seconds: 1.0,
        };
        let md = dir.join("REPORT.md");
        write(&md, &dir.join("report"), &Header::default(), &[sec]).unwrap();
        let text = std::fs::read_to_string(&md).unwrap();
        assert!(text.contains("| f | ≤ 1 | 2 | **no** |"));
        assert!(text.contains("**Not measured:** tool missing"));
        assert!(text.contains("![x.svg](report/x.svg)"));
        assert!(dir.join("report/x.svg").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
