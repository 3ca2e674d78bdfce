//! TLS to PostgreSQL (issue 15, item 7): `sslmode=require` and
//! `sslmode=verify-full&sslrootcert=...` against PostgreSQL servers of the
//! test's own, one with `ssl = on` and a certificate from a test CA, one
//! without TLS. Skips loudly without PostgreSQL binaries or root, fails
//! instead under `JWKS_TEST_REQUIRE_POSTGRES=1`.

use jwks_e2e::{Issuer, IssuerOptions, PrivatePostgres, TEST_KEK, TestCa, psql, skip_without_postgres};

fn options(url: String) -> IssuerOptions {
    IssuerOptions { postgres: Some(url), kek: Some(TEST_KEK.to_string()), ..IssuerOptions::default() }
}

/// How many of the issuer's connections to `port` are encrypted, and how many it has.
fn issuer_connections(port: u16) -> (u32, u32) {
    let out = psql(
        port,
        "postgres",
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name = 'jwks-issuer'",
    )
    .expect("psql");
    let (tls, all) = out.split_once('|').expect("two columns");
    (tls.parse().unwrap(), all.parse().unwrap())
}

#[test]
fn postgres_tls_verify_full_and_require() {
    let ca = TestCa::new("e2e PostgreSQL CA");
    let pg = match PrivatePostgres::start_with(Some(&ca.issue("postgres", "IP:127.0.0.1"))) {
        Ok(pg) => pg,
        Err(e) => return skip_without_postgres("postgres_tls_verify_full_and_require", &e),
    };
    psql(pg.port, "postgres", "CREATE DATABASE tls_keys").expect("create database");
    let base = format!("postgres://postgres@127.0.0.1:{}/tls_keys", pg.port);
    let ca_file = ca.cert.display().to_string();

    // verify-full with the right CA: serves, over TLS only.
    let issuer = Issuer::start(&options(format!("{base}?sslmode=verify-full&sslrootcert={ca_file}")));
    assert_eq!(issuer.keys().len(), 2, "the store was created over TLS");
    let (tls, all) = issuer_connections(pg.port);
    assert!(all > 0 && tls == all, "{tls} of {all} connections encrypted");
    drop(issuer);

    // require: encrypted, certificate not checked (libpq's meaning).
    let issuer = Issuer::start(&options(format!("{base}?sslmode=require")));
    let (tls, all) = issuer_connections(pg.port);
    assert!(all > 0 && tls == all, "{tls} of {all} connections encrypted");
    drop(issuer);

    // verify-full with another CA: refused, saying why.
    let other = TestCa::new("another CA");
    let e = Issuer::try_start(&options(format!("{base}?sslmode=verify-full&sslrootcert={}", other.cert.display())))
        .expect_err("an unknown CA is refused");
    assert!(e.contains("UnknownIssuer") && e.contains("connecting"), "{e}");

    // verify-full with a host name the certificate does not name.
    let wrong_host =
        format!("postgres://postgres@localhost:{}/tls_keys?sslmode=verify-full&sslrootcert={ca_file}", pg.port);
    let e = Issuer::try_start(&options(wrong_host)).expect_err("a wrong host name is refused");
    assert!(e.contains("not valid for name"), "{e}");

    // A server without TLS and sslmode=require: no connection.
    let plain = match PrivatePostgres::start() {
        Ok(pg) => pg,
        Err(e) => return skip_without_postgres("postgres_tls_verify_full_and_require", &e),
    };
    psql(plain.port, "postgres", "CREATE DATABASE tls_keys").expect("create database");
    let e =
        Issuer::try_start(&options(format!("postgres://postgres@127.0.0.1:{}/tls_keys?sslmode=require", plain.port)))
            .expect_err("require against a server without TLS fails");
    assert!(e.contains("TLS"), "{e}");
}
