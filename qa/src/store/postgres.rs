//! PostgreSQL behind [`Db`], for sites that outgrow one box: several voxgates can share one database
//! (the schema is migrated under an advisory lock). Blocking client: call it from storage or blocking
//! threads, never from an async worker.

use std::error::Error as StdError;

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls};

use super::db::{numbered_placeholders, Db, Dialect, Param, Row, Val};
use super::StoreError;

/// Arbitrary constant that names voxgate's migration lock.
const MIGRATION_LOCK: i64 = 0x0076_6f78_6761_7465;

pub struct PgDb {
    client: Client,
}

impl PgDb {
    /// Connects; the URL is never put into an error (it may hold a password).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let client = Client::connect(url, NoTls).map_err(StoreError::PgConnect)?;
        Ok(Self { client })
    }

    pub(crate) fn lock_migrations(&mut self) -> Result<(), StoreError> {
        self.client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
        Ok(())
    }
}

/// Binds a [`Param`] to whatever type the server inferred for the placeholder.
#[derive(Debug)]
struct Bind<'a>(&'a Param);

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match (self.0, ty) {
            (Param::Null, _) => Ok(IsNull::Yes),
            (Param::Int(v), &Type::INT8) => v.to_sql(ty, out),
            (Param::Int(v), &Type::INT4) => i32::try_from(*v)?.to_sql(ty, out),
            (Param::Int(v), &Type::INT2) => i16::try_from(*v)?.to_sql(ty, out),
            (Param::Int(v), &Type::FLOAT8) => (*v as f64).to_sql(ty, out),
            (Param::Int(v), &Type::BOOL) => (*v != 0).to_sql(ty, out),
            (Param::Real(v), &Type::FLOAT8) => v.to_sql(ty, out),
            (Param::Real(v), &Type::FLOAT4) => (*v as f32).to_sql(ty, out),
            (Param::Text(s), _) => s.as_str().to_sql(ty, out),
            (p, t) => Err(format!("cannot bind {p:?} to a {t} column").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn read(row: &postgres::Row, i: usize) -> Result<Val, postgres::Error> {
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Val::Null, Val::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(Val::Null, |v| Val::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map_or(Val::Null, |v| Val::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Val::Null, |v| Val::Int(v.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)?
            .map_or(Val::Null, Val::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map_or(Val::Null, |v| Val::Real(v.into())),
        _ => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Val::Null, Val::Text),
    })
}

impl Db for PgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        let binds: Vec<Bind<'_>> = params.iter().map(Bind).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as _).collect();
        Ok(self.client.execute(&numbered_placeholders(sql), &refs)?)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError> {
        let binds: Vec<Bind<'_>> = params.iter().map(Bind).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as _).collect();
        let rows = self.client.query(&numbered_placeholders(sql), &refs)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| read(r, i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
                    .map_err(StoreError::from)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.client.batch_execute(sql)?)
    }

    fn schema_version(&mut self) -> Result<i64, StoreError> {
        self.client.batch_execute(
            "CREATE TABLE IF NOT EXISTS voxgate_schema (version BIGINT NOT NULL);
             INSERT INTO voxgate_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM voxgate_schema)",
        )?;
        let row = self
            .client
            .query_one("SELECT version FROM voxgate_schema", &[])?;
        Ok(row.try_get(0)?)
    }

    fn set_schema_version(&mut self, version: i64) -> Result<(), StoreError> {
        self.client
            .execute("UPDATE voxgate_schema SET version = $1", &[&version])?;
        Ok(())
    }
}
