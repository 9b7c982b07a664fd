//! The one seam between the call store and its database: SQLite (embedded default) or PostgreSQL (for sites
//! that outgrow one box). Everything above it — schema, queries, reviews, dashboards, retention — is written
//! once, in `?`-placeholder SQL that both dialects accept; the PostgreSQL side rewrites `?` to `$n`.

use super::StoreError;

/// Which SQL dialect is behind a [`Db`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}
impl From<f64> for Param {
    fn from(v: f64) -> Self {
        Param::Real(v)
    }
}
impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Int(i64::from(v))
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_string())
    }
}
impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}
impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

/// A column value as read back.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// One result row, read by column index.
#[derive(Clone, Debug, Default)]
pub struct Row(pub Vec<Val>);

impl Row {
    fn at(&self, i: usize) -> Result<&Val, StoreError> {
        self.0.get(i).ok_or(StoreError::Column {
            index: i,
            expected: "a column",
        })
    }
    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?.ok_or(StoreError::Column {
            index: i,
            expected: "an integer",
        })
    }
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.at(i)? {
            Val::Null => Ok(None),
            Val::Int(v) => Ok(Some(*v)),
            Val::Real(v) => Ok(Some(*v as i64)),
            Val::Text(_) => Err(StoreError::Column {
                index: i,
                expected: "an integer",
            }),
        }
    }
    pub fn real(&self, i: usize) -> Result<f64, StoreError> {
        self.opt_real(i)?.ok_or(StoreError::Column {
            index: i,
            expected: "a number",
        })
    }
    pub fn opt_real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        match self.at(i)? {
            Val::Null => Ok(None),
            Val::Int(v) => Ok(Some(*v as f64)),
            Val::Real(v) => Ok(Some(*v)),
            Val::Text(_) => Err(StoreError::Column {
                index: i,
                expected: "a number",
            }),
        }
    }
    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or(StoreError::Column {
            index: i,
            expected: "text",
        })
    }
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.at(i)? {
            Val::Null => Ok(None),
            Val::Text(s) => Ok(Some(s.clone())),
            _ => Err(StoreError::Column {
                index: i,
                expected: "text",
            }),
        }
    }
    pub fn bool(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.int(i)? != 0)
    }
    pub fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError> {
        Ok(self.opt_int(i)?.map(|v| v != 0))
    }
}

/// A database connection the store can run its SQL on.
pub trait Db: Send {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; returns the number of rows changed.
    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError>;
    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError>;
    /// Runs several `;`-separated statements without parameters (schema, BEGIN/COMMIT).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Schema version the database is at (0 = empty).
    fn schema_version(&mut self) -> Result<i64, StoreError>;
    /// Records the schema version; runs inside the migration's transaction.
    fn set_schema_version(&mut self, version: i64) -> Result<(), StoreError>;
}

/// `?` placeholders → `$1, $2, …` (the queries never hold a literal `?`).
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
        );
    }

    #[test]
    fn rows_convert_and_report_the_bad_column() {
        let r = Row(vec![
            Val::Int(3),
            Val::Null,
            Val::Text("x".into()),
            Val::Real(2.5),
        ]);
        assert_eq!(r.int(0).ok(), Some(3));
        assert_eq!(r.opt_int(1).ok(), Some(None));
        assert_eq!(r.real(3).ok(), Some(2.5));
        assert!(r.bool(0).unwrap_or(false));
        assert!(matches!(r.int(2), Err(StoreError::Column { index: 2, .. })));
        assert!(matches!(
            r.text(9),
            Err(StoreError::Column { index: 9, .. })
        ));
    }
}
