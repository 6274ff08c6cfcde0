//! The site's data: users, roles, sessions and settings, plus Drupal's user validation rules.

pub use crate::fields::FVal;
use crate::fields::{effective_fields, UserField};
use crate::json::J;
use crate::util::{new_uuid, now, token};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};

pub const ADMIN_PERMS_ROLE: &str = "administrator";

pub struct Role {
    pub id: &'static str,
    pub uuid: String,
    pub label: &'static str,
    pub weight: i64,
    pub is_admin: bool,
    pub permissions: Vec<&'static str>,
    pub dependencies: J,
}

fn strs(v: &[&'static str]) -> J {
    J::Arr(v.iter().map(|s| J::Str(s.to_string())).collect())
}

/// The standard profile's roles, in the order Drupal lists them (record 002).
pub fn seed_roles() -> Vec<Role> {
    vec![
        Role {
            id: "content_editor",
            uuid: new_uuid(),
            label: "Content editor",
            weight: 2,
            is_admin: false,
            permissions: vec![
                "access administration pages",
                "access content overview",
                "access contextual links",
                "access files overview",
                "access toolbar",
                "administer url aliases",
                "create article content",
                "create page content",
                "create terms in tags",
                "create url aliases",
                "delete article revisions",
                "delete own article content",
                "delete own files",
                "delete own page content",
                "delete page revisions",
                "edit own article content",
                "edit own comments",
                "edit own page content",
                "edit terms in tags",
                "revert all revisions",
                "view all revisions",
                "view own unpublished content",
                "view the administration theme",
            ],
            dependencies: J::obj()
                .with(
                    "config",
                    strs(&[
                        "node.type.article",
                        "node.type.page",
                        "taxonomy.vocabulary.tags",
                    ]),
                )
                .with(
                    "module",
                    strs(&[
                        "comment",
                        "contextual",
                        "file",
                        "node",
                        "path",
                        "system",
                        "taxonomy",
                        "toolbar",
                    ]),
                ),
        },
        Role {
            id: "administrator",
            uuid: new_uuid(),
            label: "Administrator",
            weight: 3,
            is_admin: true,
            permissions: vec![],
            dependencies: J::Arr(vec![]),
        },
        Role {
            id: "anonymous",
            uuid: new_uuid(),
            label: "Anonymous user",
            weight: 0,
            is_admin: false,
            permissions: vec![
                "access comments",
                "access content",
                "access site-wide contact form",
                "search content",
                "use text format restricted_html",
            ],
            dependencies: J::obj()
                .with("config", strs(&["filter.format.restricted_html"]))
                .with(
                    "module",
                    strs(&["comment", "contact", "filter", "search", "system"]),
                ),
        },
        Role {
            id: "authenticated",
            uuid: new_uuid(),
            label: "Authenticated user",
            weight: 1,
            is_admin: false,
            permissions: vec![
                "access comments",
                "access content",
                "access shortcuts",
                "access site-wide contact form",
                "delete own files",
                "post comments",
                "search content",
                "skip comment approval",
                "use text format basic_html",
            ],
            dependencies: J::obj()
                .with("config", strs(&["filter.format.basic_html"]))
                .with(
                    "module",
                    strs(&[
                        "comment", "contact", "file", "filter", "search", "shortcut", "system",
                    ]),
                ),
        },
    ]
}

pub struct User {
    pub uid: i64,
    pub uuid: String,
    pub name: String,
    pub mail: Option<String>,
    /// Plain text (the emulator does not hash); `None` = no password, cannot log in.
    pub pass: Option<String>,
    pub status: bool,
    pub created: i64,
    pub changed: i64,
    /// The `access` column as stored.
    pub access: i64,
    /// JSON:API's normalisation cache of `access` (-1 = not cached). Drupal updates `access`
    /// behind the entity's back, so JSON:API keeps showing the old value until the next save.
    pub access_cached: AtomicI64,
    pub login: i64,
    pub init: Option<String>,
    pub timezone: Option<String>,
    pub langcode: String,
    pub preferred_langcode: Option<String>,
    pub preferred_admin_langcode: Option<String>,
    /// Role machine names, in stored order (never anonymous/authenticated).
    pub roles: Vec<String>,
    /// Values of the configurable fields (`--user-field`, `--second-run-fields`), by field name.
    /// An absent entry is an empty field (NULL).
    pub fields: Vec<(String, FVal)>,
}

impl Clone for User {
    fn clone(&self) -> Self {
        User {
            uid: self.uid,
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            mail: self.mail.clone(),
            pass: self.pass.clone(),
            status: self.status,
            created: self.created,
            changed: self.changed,
            access: self.access,
            access_cached: AtomicI64::new(self.access_cached.load(Ordering::Relaxed)),
            login: self.login,
            init: self.init.clone(),
            timezone: self.timezone.clone(),
            langcode: self.langcode.clone(),
            preferred_langcode: self.preferred_langcode.clone(),
            preferred_admin_langcode: self.preferred_admin_langcode.clone(),
            roles: self.roles.clone(),
            fields: self.fields.clone(),
        }
    }
}

impl User {
    pub fn new(uid: i64, name: &str, ts: i64) -> User {
        User {
            uid,
            uuid: new_uuid(),
            name: name.to_string(),
            mail: None,
            pass: None,
            status: false,
            created: ts,
            changed: ts,
            access: 0,
            access_cached: AtomicI64::new(-1),
            login: 0,
            init: None,
            timezone: Some("UTC".to_string()),
            langcode: "en".to_string(),
            preferred_langcode: Some("en".to_string()),
            preferred_admin_langcode: None,
            roles: Vec::new(),
            fields: Vec::new(),
        }
    }

    pub fn field(&self, name: &str) -> Option<&FVal> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The target ids of an entity-reference field (empty when unset).
    pub fn refs(&self, name: &str) -> &[i64] {
        match self.field(name) {
            Some(FVal::Refs(r)) => r,
            _ => &[],
        }
    }

    /// Sets (Some) or empties (None) a configurable field.
    pub fn set_field(&mut self, name: &str, v: Option<FVal>) {
        let v = v.filter(|v| !matches!(v, FVal::Refs(r) if r.is_empty()));
        match (self.fields.iter().position(|(k, _)| k == name), v) {
            (Some(i), Some(v)) => self.fields[i].1 = v,
            (Some(i), None) => {
                self.fields.remove(i);
            }
            (None, Some(v)) => self.fields.push((name.to_string(), v)),
            (None, None) => {}
        }
    }

    pub fn display_name(&self) -> String {
        if self.uid == 0 {
            "Anonymous".to_string()
        } else {
            self.name.clone()
        }
    }

    /// The `access` value JSON:API shows (cached until the next save).
    pub fn jsonapi_access(&self) -> i64 {
        let c = self.access_cached.load(Ordering::Relaxed);
        if c >= 0 {
            return c;
        }
        self.access_cached.store(self.access, Ordering::Relaxed);
        self.access
    }

    /// After a save, Drupal's caches for this entity are invalidated.
    pub fn saved(&mut self) {
        self.access_cached.store(-1, Ordering::Relaxed);
    }

    /// Comparable snapshot of the stored values (for "did anything change?").
    pub fn values_key(&self) -> String {
        let mut fields: Vec<&(String, FVal)> = self.fields.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        format!(
            "{}\u{0}{:?}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{}\u{0}{:?}",
            self.name,
            self.mail,
            self.pass,
            self.status,
            self.created,
            self.access,
            self.login,
            self.init,
            self.timezone,
            self.langcode,
            self.preferred_langcode,
            self.preferred_admin_langcode,
            self.roles,
            self.uuid,
            fields
        )
    }
}

pub struct Session {
    pub uid: i64,
    pub csrf: String,
    pub logout: String,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub cancel_method: String,
    pub mail_case_insensitive: bool,
    pub read_only: bool,
    pub latency_ms: u64,
    /// Per-request Drupal cost on top of `latency_ms` (`none` or `drupal`; see `cost.rs`).
    pub cost_model: crate::cost::CostModel,
    /// 0 = writes are serialised. N > 0 = the lost-update race of a PHP server with 4 workers:
    /// writes load, wait N ms without the lock, then save the whole entity.
    pub race_window_ms: u64,
    /// The recorded site's second-run additions: vocabulary `scim_groups`, `field_given_name`,
    /// `field_family_name` and `field_scim_groups`.
    pub second_run_fields: bool,
    /// Extra configurable user fields (`--user-field`).
    pub user_fields: Vec<UserField>,
    /// Drupal's Dynamic Page Cache keeps the 403 a refused-credentials JSON:API filter got and
    /// serves it to every later GET of that URL (see `App::dynamic_cache_*`).
    pub dynamic_page_cache: bool,
    /// The core REST `entity:user` resource: off, or the authentication providers it allows.
    pub rest_user_resource: crate::rest::RestUserResource,
    /// Term permissions (`create terms in scim_groups`, …) every account lacks, administrators
    /// included: a service account whose role was not granted them. Drupal's answer is the
    /// 403 of `TermAccessControlHandler`, naming the permission.
    pub withheld_term_permissions: Vec<String>,
    /// settings.php's `reverse_proxy_addresses` (with `reverse_proxy` TRUE when not empty):
    /// from these peers Drupal takes the client's address from `X-Forwarded-For`, the
    /// right-most entry that is not itself one of them (Symfony's `getClientIp`), and flood
    /// control counts that address.
    pub reverse_proxy_addresses: Vec<String>,
    /// MariaDB's `utf8mb4_general_ci` (Drupal's default on MySQL) instead of SQLite: every
    /// text comparison of a filter ignores case and accents (`jose` = `José`, `ß` = `s`), and
    /// the unique key on `name` refuses such an equal with a 500 once Drupal's own check
    /// (LIKE, then PHP's ASCII `strtolower`) let it through.
    pub general_ci: bool,
    /// A fault switch, 0 = off: the server closes a keep-alive connection idle this long
    /// (Apache's `KeepAliveTimeout` is 5 s), taken at its worst: the close crosses the next
    /// request, which is dropped unanswered and unseen, as when a proxy reuses a connection
    /// the server has just closed.
    pub idle_close_ms: u64,
    /// Differences from the recorded site that account protection must survive.
    pub quirks: crate::quirks::Quirks,
}

impl Settings {
    /// The client's address as Drupal determines it (see `reverse_proxy_addresses`).
    pub fn client_ip(&self, peer: &str, forwarded_for: Option<&str>) -> String {
        if !self.reverse_proxy_addresses.iter().any(|a| a == peer) {
            return peer.to_string();
        }
        let hops: Vec<&str> = forwarded_for
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        hops.iter()
            .rev()
            .find(|h| !self.reverse_proxy_addresses.iter().any(|a| a == *h))
            .or(hops.first())
            .map(|h| h.to_string())
            .unwrap_or_else(|| peer.to_string())
    }

    pub fn to_json(&self) -> J {
        let out = J::obj()
            .with("cancel_method", self.cancel_method.as_str())
            .with("mail_case_insensitive", self.mail_case_insensitive)
            .with("read_only", self.read_only)
            .with("latency_ms", self.latency_ms)
            .with("cost_model", self.cost_model.as_str())
            .with("race_window_ms", self.race_window_ms)
            .with("second_run_fields", self.second_run_fields)
            .with(
                "user_fields",
                J::Arr(self.user_fields.iter().map(|f| f.to_json()).collect()),
            )
            .with("dynamic_page_cache", self.dynamic_page_cache)
            .with("rest_user_resource", self.rest_user_resource.as_str());
        let out = self.quirks.to_json(out);
        let out = if self.idle_close_ms == 0 {
            out
        } else {
            out.with("idle_close_ms", self.idle_close_ms)
        };
        // Shown only when set: the usual settings document stays as it was.
        let out = if self.general_ci {
            out.with("collation", "general_ci")
        } else {
            out
        };
        let out = if self.reverse_proxy_addresses.is_empty() {
            out
        } else {
            out.with(
                "reverse_proxy_addresses",
                J::Arr(
                    self.reverse_proxy_addresses
                        .iter()
                        .map(|p| J::Str(p.clone()))
                        .collect(),
                ),
            )
        };
        if self.withheld_term_permissions.is_empty() {
            return out;
        }
        out.with(
            "withheld_term_permissions",
            J::Arr(
                self.withheld_term_permissions
                    .iter()
                    .map(|p| J::Str(p.clone()))
                    .collect(),
            ),
        )
    }
}

/// A taxonomy term (`taxonomy_term`, revisionable; renames do not create revisions).
#[derive(Clone, Debug)]
pub struct Term {
    pub tid: i64,
    pub uuid: String,
    /// Vocabulary (bundle) id.
    pub vid: String,
    pub revision_id: i64,
    pub name: String,
    /// (value, format)
    pub description: Option<(String, Option<String>)>,
    pub weight: i64,
    pub status: bool,
    pub langcode: String,
    pub created: i64,
    pub changed: i64,
    /// Parent tids; `[0]` is the root (the `virtual` identifier).
    pub parent: Vec<i64>,
}

impl Term {
    pub fn values_key(&self) -> String {
        format!(
            "{}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{}\u{0}{:?}",
            self.name, self.description, self.weight, self.status, self.langcode, self.parent
        )
    }
}

/// A vocabulary (config entity `taxonomy_vocabulary`).
#[derive(Clone, Debug)]
pub struct Vocab {
    pub id: &'static str,
    pub uuid: String,
    pub name: &'static str,
    pub description: Option<&'static str>,
}

pub const CANCEL_METHODS: [&str; 4] = [
    "user_cancel_block",
    "user_cancel_block_unpublish",
    "user_cancel_reassign",
    "user_cancel_delete",
];

/// The Drupal release whose answers the emulator gives (`--drupal-version`). The recorded
/// transcripts are 10.3.6; where 10.6 or 11.4 answer differently (found by the live contract,
/// `tests/live_contract/`), the emulator follows the version chosen here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum DrupalVersion {
    #[default]
    V10_3,
    V10_6,
    V11_4,
}

impl DrupalVersion {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "10.3" => Some(Self::V10_3),
            "10.6" => Some(Self::V10_6),
            "11.4" => Some(Self::V11_4),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V10_3 => "10.3",
            Self::V10_6 => "10.6",
            Self::V11_4 => "11.4",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub drupal_version: DrupalVersion,
    pub admin_user: String,
    pub admin_pass: String,
    pub seed_limited: bool,
    /// Accounts a site already has (`--seed-users FILE`), in the `/_emulator/users` format;
    /// created at start and again on every reset.
    pub seed_users: Vec<serde_json::Value>,
    pub settings: Settings,
    /// Site name, used in the Basic realm and HTML titles.
    pub site_name: String,
}

pub struct Db {
    pub users: BTreeMap<i64, User>,
    pub by_uuid: HashMap<String, i64>,
    /// ASCII-lowercased name -> uid (Drupal looks accounts up with LIKE, which folds ASCII only).
    pub by_name: HashMap<String, i64>,
    pub next_uid: i64,
    pub roles: Vec<Role>,
    pub sessions: HashMap<String, Session>,
    pub settings: Settings,
    /// The configurable user fields in effect (derived from the settings), sorted by name.
    pub fields: Vec<UserField>,
    pub terms: BTreeMap<i64, Term>,
    /// Lower-case uuid -> tid.
    pub term_by_uuid: HashMap<String, i64>,
    pub next_tid: i64,
    pub next_revision: i64,
    /// `tags` (standard profile) and `scim_groups` (second run).
    pub vocabs: Vec<Vocab>,
}

/// The initial UUIDs, so that `/_emulator/reset` restores exactly the start seed.
pub struct SeedIds {
    pub roles: Vec<String>,
    pub users: Vec<String>,
    pub vocabs: Vec<String>,
}

pub fn seed_vocabs() -> Vec<Vocab> {
    vec![
        Vocab {
            id: "tags",
            uuid: new_uuid(),
            name: "Tags",
            description: Some("Use tags to group articles on similar topics into categories."),
        },
        Vocab {
            id: "scim_groups",
            uuid: new_uuid(),
            name: "SCIM groups",
            description: None,
        },
    ]
}

impl Db {
    pub fn seed(cfg: &Config, ids: Option<&SeedIds>) -> Db {
        let ts = now();
        let mut roles = seed_roles();
        if let Some(ids) = ids {
            for (r, u) in roles.iter_mut().zip(ids.roles.iter()) {
                r.uuid = u.clone();
            }
        }
        let mut vocabs = seed_vocabs();
        if let Some(ids) = ids {
            for (v, u) in vocabs.iter_mut().zip(ids.vocabs.iter()) {
                v.uuid = u.clone();
            }
        }
        let mut db = Db {
            users: BTreeMap::new(),
            by_uuid: HashMap::new(),
            by_name: HashMap::new(),
            next_uid: 1,
            roles,
            sessions: HashMap::new(),
            settings: {
                crate::filter::set_general_ci(cfg.settings.general_ci);
                cfg.settings.clone()
            },
            fields: Vec::new(),
            terms: BTreeMap::new(),
            term_by_uuid: HashMap::new(),
            next_tid: 1,
            next_revision: 1,
            vocabs,
        };
        db.refresh_fields();
        let mut anon = User::new(0, "", ts);
        anon.timezone = None;
        anon.preferred_langcode = None;
        let mut admin = User::new(1, &cfg.admin_user, ts);
        admin.mail = Some("admin@example.com".to_string());
        admin.init = Some("admin@localhost".to_string());
        admin.pass = Some(cfg.admin_pass.clone());
        admin.status = true;
        admin.roles = vec![ADMIN_PERMS_ROLE.to_string()];
        let mut seeded = vec![anon, admin];
        if cfg.seed_limited {
            let mut limited = User::new(2, "limited", ts);
            limited.mail = Some("limited@example.com".to_string());
            limited.pass = Some("limited".to_string());
            limited.status = true;
            seeded.push(limited);
        }
        for (i, mut u) in seeded.into_iter().enumerate() {
            if let Some(id) = ids.and_then(|ids| ids.users.get(i)) {
                u.uuid = id.clone();
            }
            db.insert(u);
        }
        db
    }

    pub fn seed_ids(&self) -> SeedIds {
        SeedIds {
            roles: self.roles.iter().map(|r| r.uuid.clone()).collect(),
            users: self.users.values().map(|u| u.uuid.clone()).collect(),
            vocabs: self.vocabs.iter().map(|v| v.uuid.clone()).collect(),
        }
    }

    /// Recomputes the effective field list after a settings change.
    pub fn refresh_fields(&mut self) {
        self.fields = effective_fields(self.settings.second_run_fields, &self.settings.user_fields);
    }

    pub fn user_field(&self, name: &str) -> Option<&UserField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether a vocabulary exists on the site (and so has JSON:API routes).
    pub fn vocab_enabled(&self, vid: &str) -> bool {
        match vid {
            "tags" => true,
            "scim_groups" => {
                self.settings.second_run_fields
                    || self
                        .fields
                        .iter()
                        .any(|f| f.bundle() == Some("scim_groups"))
            }
            _ => false,
        }
    }

    pub fn vocab(&self, vid: &str) -> Option<&Vocab> {
        self.vocabs.iter().find(|v| v.id == vid)
    }

    pub fn term_by_uuid(&self, uuid: &str) -> Option<&Term> {
        self.term_by_uuid
            .get(&uuid.to_ascii_lowercase())
            .and_then(|tid| self.terms.get(tid))
    }

    pub fn insert_term(&mut self, t: Term) {
        if t.tid >= self.next_tid {
            self.next_tid = t.tid + 1;
        }
        if t.revision_id >= self.next_revision {
            self.next_revision = t.revision_id + 1;
        }
        self.term_by_uuid.insert(t.uuid.to_ascii_lowercase(), t.tid);
        self.terms.insert(t.tid, t);
    }

    pub fn remove_term(&mut self, tid: i64) -> Option<Term> {
        let t = self.terms.remove(&tid)?;
        self.term_by_uuid.remove(&t.uuid.to_ascii_lowercase());
        Some(t)
    }

    pub fn insert(&mut self, u: User) {
        if u.uid >= self.next_uid {
            self.next_uid = u.uid + 1;
        }
        self.by_uuid.insert(u.uuid.to_ascii_lowercase(), u.uid);
        if u.uid != 0 {
            self.by_name.insert(u.name.to_ascii_lowercase(), u.uid);
        }
        self.users.insert(u.uid, u);
    }

    pub fn remove(&mut self, uid: i64) -> Option<User> {
        // The anonymous account (uid 0) can never be deleted.
        if uid == 0 {
            return None;
        }
        let u = self.users.remove(&uid)?;
        self.by_uuid.remove(&u.uuid.to_ascii_lowercase());
        if self.by_name.get(&u.name.to_ascii_lowercase()) == Some(&uid) {
            self.by_name.remove(&u.name.to_ascii_lowercase());
        }
        self.sessions.retain(|_, s| s.uid != uid);
        Some(u)
    }

    /// Replaces a stored user (keeps the indexes right when name or uuid changed).
    pub fn replace(&mut self, u: User) {
        if let Some(old) = self.users.get(&u.uid) {
            let old_name = old.name.to_ascii_lowercase();
            let old_uuid = old.uuid.to_ascii_lowercase();
            if self.by_name.get(&old_name) == Some(&u.uid) {
                self.by_name.remove(&old_name);
            }
            self.by_uuid.remove(&old_uuid);
        }
        self.insert(u);
    }

    pub fn user_by_uuid(&self, uuid: &str) -> Option<&User> {
        self.by_uuid
            .get(&uuid.to_ascii_lowercase())
            .and_then(|uid| self.users.get(uid))
    }

    pub fn user_by_name(&self, name: &str) -> Option<&User> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .and_then(|uid| self.users.get(uid))
    }

    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }

    pub fn role_by_uuid(&self, uuid: &str) -> Option<&Role> {
        self.roles
            .iter()
            .find(|r| r.uuid.eq_ignore_ascii_case(uuid))
    }

    pub fn new_session(&mut self, uid: i64) -> String {
        let sid = token();
        self.sessions.insert(
            sid.clone(),
            Session {
                uid,
                csrf: token(),
                logout: token(),
            },
        );
        sid
    }
}

// ---------------------------------------------------------------------------------------------
// Validation (Drupal's constraint messages, recorded texts).

#[derive(Clone, Debug)]
pub struct Violation {
    /// Field order index (Drupal validates fields in definition order).
    pub order: u8,
    /// Property path, e.g. `name` or `mail.0.value`.
    pub path: String,
    pub message: String,
    /// A multi-valued field: the pointer keeps the delta.
    pub multi: bool,
}

impl Violation {
    pub fn new(field: &str, path: &str, message: impl Into<String>) -> Violation {
        Violation {
            order: field_order(field),
            path: path.to_string(),
            message: message.into(),
            multi: false,
        }
    }
    /// A violation on a multi-valued field (the pointer keeps `/<delta>/`).
    pub fn multi(field: &str, path: &str, message: impl Into<String>) -> Violation {
        Violation {
            multi: true,
            ..Violation::new(field, path, message)
        }
    }
    /// JSON:API pointer: the `/0/` delta of single-value fields is dropped.
    pub fn pointer(&self) -> String {
        if self.multi {
            return format!("/data/attributes/{}", self.path.replace('.', "/"));
        }
        let p = self.path.replace(".0.", "/").replace('.', "/");
        let p = p.strip_suffix("/0").unwrap_or(&p).to_string();
        format!("/data/attributes/{p}")
    }
}

pub fn field_order(field: &str) -> u8 {
    match field {
        "uid" => 0,
        "uuid" => 1,
        "langcode" => 2,
        "preferred_langcode" => 3,
        "preferred_admin_langcode" => 4,
        "name" => 5,
        "pass" => 6,
        "mail" => 7,
        "timezone" => 8,
        "status" => 9,
        "created" => 10,
        "changed" => 11,
        "access" => 12,
        "login" => 13,
        "init" => 14,
        "roles" => 15,
        "default_langcode" => 16,
        _ => 17,
    }
}

/// `UserNameConstraintValidator` (without the empty case).
pub fn name_format_violations(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name.starts_with(' ') {
        out.push("The username cannot begin with a space.".to_string());
    }
    if name.ends_with(' ') {
        out.push("The username cannot end with a space.".to_string());
    }
    if name.contains("  ") {
        out.push("The username cannot contain multiple spaces in a row.".to_string());
    }
    let byte_illegal = name.bytes().any(|b| {
        !((0x80..=0xF7).contains(&b)
            || b == b' '
            || b.is_ascii_alphanumeric()
            || matches!(b, b'@' | b'+' | b'_' | b'.' | b'\'' | b'-'))
    });
    let char_illegal = name.chars().any(|c| {
        let c = c as u32;
        (0x80..=0xA0).contains(&c)
            || c == 0xAD
            || (0x2000..=0x200F).contains(&c)
            || (0x2028..=0x202F).contains(&c)
            || (0x205F..=0x206F).contains(&c)
            || c == 0xFEFF
            || (0xFF01..=0xFF60).contains(&c)
            || (0xFFF9..=0xFFFD).contains(&c)
            || c <= 0x1F
    });
    if byte_illegal || char_illegal {
        out.push("The username contains an illegal character.".to_string());
    }
    if name.chars().count() > 60 {
        out.push(format!(
            "The username {name} is too long: it must be 60 characters or less."
        ));
    }
    out
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || (c as u32) >= 0x80
}

/// An approximation of Symfony's strict Email constraint (egulias, no RFC warnings allowed).
pub fn mail_is_valid(mail: &str) -> bool {
    if mail.len() > 254 {
        return false;
    }
    let Some(at) = mail.rfind('@') else {
        return false;
    };
    let (local, domain) = (&mail[..at], &mail[at + 1..]);
    if local.is_empty() || domain.is_empty() || local.len() > 64 {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    if !local.chars().all(|c| c == '.' || is_atext(c)) {
        return false;
    }
    if domain.len() > 253 {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || (c as u32) >= 0x80)
    })
}

/// Equality under the unique key of `users_field_data.name`: the column's collation,
/// NOCASE_UTF8 on SQLite, `utf8mb4_general_ci` on MariaDB.
pub fn eq_name_key(a: &str, b: &str) -> bool {
    if crate::filter::general_ci() {
        crate::filter::general_ci_key(a) == crate::filter::general_ci_key(b)
    } else {
        eq_nocase_utf8(a, b)
    }
}

/// Unicode case-insensitive equality (SQLite's NOCASE_UTF8 collation = `mb_strtolower`).
pub fn eq_nocase_utf8(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(name_format_violations("Zoë Ñandú").is_empty());
        assert_eq!(
            name_format_violations("bad*name"),
            vec!["The username contains an illegal character."]
        );
        assert_eq!(
            name_format_violations(" spacey"),
            vec!["The username cannot begin with a space."]
        );
        assert_eq!(name_format_violations(&"y".repeat(60)).len(), 0);
        assert_eq!(name_format_violations(&"x".repeat(61)).len(), 1);
        assert!(!name_format_violations("a\u{00A0}b").is_empty());
    }

    #[test]
    fn mail_rules() {
        assert!(mail_is_valid("alice@example.com"));
        assert!(mail_is_valid("ALICE@EXAMPLE.COM"));
        assert!(mail_is_valid("a.b+c@sub.example.org"));
        assert!(!mail_is_valid("not-an-email"));
        assert!(!mail_is_valid("bad-mail"));
        assert!(!mail_is_valid("a..b@example.com"));
        assert!(!mail_is_valid(&format!("{}@example.com", "a".repeat(65))));
        assert!(!mail_is_valid("a@-example.com"));
    }

    #[test]
    fn pointers() {
        assert_eq!(
            Violation::new("mail", "mail.0.value", "x").pointer(),
            "/data/attributes/mail/value"
        );
        assert_eq!(
            Violation::new("name", "name", "x").pointer(),
            "/data/attributes/name"
        );
    }
}
