//! The console's operator commands over the admin API: operators (create,
//! list, remove, log in, revoke sessions), organizations and the audit
//! trail (`cairn_proto::console`).
//!
//! An operator logs in like `cairn login`: the KDF parameters come from the
//! server, the login key is derived here, and only it is sent.

use std::path::Path;

use cairn_proto::api::Kdf as ApiKdf;
use cairn_proto::console::{
    AuditInfo, ConfigureOrg, CreateOperator, OperatorInfo, OperatorLogin, OperatorLoginParams,
    OperatorSessionReply, OperatorTotp, OrgInfo, RevokeSessions, SetTotp,
};
use cairn_proto::{kdf, route};

use super::{new_login_key, other, read_password, CliError, Client};

impl Client {
    /// Creates an operator with the password read from `password_file`.
    ///
    /// # Errors
    ///
    /// Unreadable file, KDF failure, or the server's refusal.
    pub async fn create_operator(
        &self,
        name: &str,
        role: &str,
        org: Option<String>,
        password_file: &Path,
        totp: bool,
    ) -> Result<OperatorInfo, CliError> {
        let (kdf, login_key) = new_login_key(password_file)?;
        let body = CreateOperator {
            name: name.to_owned(),
            role: role.to_owned(),
            org,
            kdf,
            login_key,
            totp,
        };
        self.post("/api/v1/admin/operators", &body).await
    }

    /// Logs operator `name` in with the password in `password_file` (and
    /// the current TOTP code, when enrolled); the answer carries the
    /// session token.
    ///
    /// # Errors
    ///
    /// Unreadable file, KDF failure, refused credentials, rate limiting.
    pub async fn operator_login(
        &self,
        name: &str,
        password_file: &Path,
        totp: Option<String>,
    ) -> Result<OperatorSessionReply, CliError> {
        let body = OperatorLogin {
            name: name.to_owned(),
            login_key: self.operator_login_key(name, password_file).await?,
            totp,
        };
        self.post("/api/v1/operators/login", &body).await
    }

    /// Operator `name`'s login key (hex), derived here from the password in
    /// `password_file` with the operator's KDF parameters.
    async fn operator_login_key(
        &self,
        name: &str,
        password_file: &Path,
    ) -> Result<String, CliError> {
        let password = read_password(password_file)?;
        let params: ApiKdf = self
            .post(
                "/api/v1/operators/login/params",
                &OperatorLoginParams {
                    name: name.to_owned(),
                },
            )
            .await?;
        let cost = kdf::Cost {
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
        };
        let keys = kdf::derive(password.as_bytes(), &params.salt, cost).map_err(other)?;
        Ok(hex::encode(keys.login))
    }

    /// Enrols operator `name` in TOTP (`enable`) or removes it. With a
    /// password file the operator changes their own, proving the password
    /// (and the current `totp` code when enrolled); without, the asking
    /// admin changes another's.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn set_totp(
        &self,
        name: &str,
        enable: bool,
        own: Option<(&Path, Option<String>)>,
    ) -> Result<OperatorInfo, CliError> {
        match own {
            Some((password_file, totp)) => {
                let body = OperatorTotp {
                    name: name.to_owned(),
                    login_key: self.operator_login_key(name, password_file).await?,
                    totp,
                    enable,
                };
                self.post("/api/v1/operators/totp", &body).await
            }
            None => {
                let path = route::path("/api/v1/admin/operators/{name}/totp", &[name]);
                self.post(&path, &SetTotp { enable }).await
            }
        }
    }

    /// The operators the asking actor sees.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn list_operators(&self) -> Result<Vec<OperatorInfo>, CliError> {
        self.get("/api/v1/admin/operators").await
    }

    /// Removes an operator.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn remove_operator(&self, name: &str) -> Result<(), CliError> {
        let path = route::path("/api/v1/admin/operators/{name}/remove", &[name]);
        self.post_empty(&path, &serde_json::json!({})).await
    }

    /// Revokes one session of an operator, or all of them.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn revoke_sessions(
        &self,
        name: &str,
        session: Option<String>,
    ) -> Result<(), CliError> {
        let path = route::path("/api/v1/admin/operators/{name}/revoke", &[name]);
        self.post_empty(&path, &RevokeSessions { session }).await
    }

    /// Creates or reconfigures an organization.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn configure_org(&self, org: &ConfigureOrg) -> Result<OrgInfo, CliError> {
        self.post("/api/v1/admin/orgs", org).await
    }

    /// The organizations the asking actor sees.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn list_orgs(&self) -> Result<Vec<OrgInfo>, CliError> {
        self.get("/api/v1/admin/orgs").await
    }

    /// The audit trail the asking actor sees, oldest first.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn audit(&self) -> Result<Vec<AuditInfo>, CliError> {
        self.get("/api/v1/admin/audit").await
    }

    async fn post_empty<B: serde::Serialize>(&self, path: &str, body: &B) -> Result<(), CliError> {
        let resp = self.post_write(path, body).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Self::handle::<serde_json::Value>(resp).await.map(|_| ())
        }
    }
}
