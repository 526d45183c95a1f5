//! The account's automation records on the cluster: vault commands,
//! schedules, retention policies and jobs recorded after the fact. Calls of
//! a logged-in [`Session`]; what they mean is the daemon's and the
//! retention module's business.

use cairn_proto::api::{
    JobInfo, PutRetention, PutSchedule, RecordJob, RetentionInfo, RetentionPolicy, ScheduleInfo,
    VaultCommands, VaultInfo,
};
use cairn_proto::{route, VaultId};

use super::check_vault_name;
use super::session::Session;
use crate::error::Result;

impl Session {
    /// Sets the before/after commands of the account vault `vault` (every
    /// device of the account runs them around its jobs on the vault).
    pub fn set_vault_commands(&self, vault: &str, commands: &VaultCommands) -> Result<VaultInfo> {
        let v = self.vault_by_name(vault)?;
        self.api().put(
            &route::path(route::VAULT_COMMANDS, &[&v.id.to_string()]),
            commands,
        )
    }

    /// This device's schedules.
    pub fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        self.api().get(route::SCHEDULES)
    }

    /// Defines (or redefines) schedule `name` of this device.
    pub fn set_schedule(&self, name: &str, schedule: &PutSchedule) -> Result<ScheduleInfo> {
        check_vault_name("schedule", name)?;
        self.api()
            .put(&route::path(route::SCHEDULE, &[name]), schedule)
    }

    /// Removes schedule `name` of this device.
    pub fn remove_schedule(&self, name: &str) -> Result<()> {
        self.api().delete(&route::path(route::SCHEDULE, &[name]))
    }

    /// The retention policies of vault `vault`: its default and this
    /// device's item overrides.
    pub fn retention(&self, vault: VaultId) -> Result<RetentionInfo> {
        self.api()
            .get(&route::path(route::RETENTION, &[&vault.to_string()]))
    }

    /// Sets the default policy of `vault` (`item: None`) or this device's
    /// override for `item`.
    pub fn set_retention(
        &self,
        vault: VaultId,
        item: Option<&str>,
        policy: RetentionPolicy,
    ) -> Result<RetentionInfo> {
        let body = PutRetention {
            item: item.map(str::to_string),
            policy,
        };
        self.api()
            .put(&route::path(route::RETENTION, &[&vault.to_string()]), &body)
    }

    /// Clears the default policy of `vault` or this device's override for
    /// `item`.
    pub fn clear_retention(&self, vault: VaultId, item: Option<&str>) -> Result<RetentionInfo> {
        let body = PutRetention {
            item: item.map(str::to_string),
            policy: RetentionPolicy::default(),
        };
        self.api().post(
            &route::path(route::RETENTION_CLEAR, &[&vault.to_string()]),
            &body,
        )
    }

    /// Records a job that started and ended at once (missed, skipped, or
    /// one that could not start while the cluster was unreachable).
    pub fn record_job(&self, job: &RecordJob) -> Result<JobInfo> {
        self.api().post(route::JOB_RECORD, job)
    }
}
