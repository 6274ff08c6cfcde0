//! The `cost_model` setting: how long a real Drupal takes per request, by request kind and by how
//! the request authenticated.
//!
//! With `cost_model = "drupal"` the server delays each Drupal request (not the `/_emulator/`
//! control API) by [`cost_us`] of its kind, on top of the flat `latency_ms`. The delay is an
//! async sleep: the emulator models the latency a caller sees, not the CPU Drupal burns, so
//! concurrent requests do not slow each other down (a real PHP site with few workers would
//! queue them; the `race_window_ms` switch's 4 worker slots, if on, are held while sleeping).
//! With `cost_model = "none"` (the default) nothing here is used and the emulator answers as
//! fast as before.
//!
//! The key fact: with Basic auth, Drupal's `basic_auth` provider checks the password's bcrypt
//! hash on *every* request (42.6 ms of each call on the recording machine), while a request
//! authenticated by a session cookie only reads the session. So every request that carries
//! `Authorization: Basic …` pays [`BCRYPT_US`], whatever the route and whether or not the
//! password is right. (Simplification: a real Drupal skips the hash when the user name does not
//! exist or the flood control already blocks the request; this model charges it anyway.)

/// Which cost model the emulator applies (setting `cost_model`, flag `--cost-model`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CostModel {
    /// Today's behaviour: only the flat `latency_ms`.
    #[default]
    None,
    /// Delay each request by [`cost_us`] of its kind and authentication.
    Drupal,
}

impl CostModel {
    pub fn parse(s: &str) -> Option<CostModel> {
        match s {
            "none" => Some(CostModel::None),
            "drupal" => Some(CostModel::Drupal),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CostModel::None => "none",
            CostModel::Drupal => "drupal",
        }
    }
}

/// The request kinds the cost table distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// GET/HEAD of one entity (`/jsonapi/{type}/{bundle}/{id}`, its `/relationships/{field}`
    /// document, REST `/user/{uid}`).
    GetIndividual,
    /// GET/HEAD of a collection (`/jsonapi/{type}/{bundle}`, with or without filter/paging) or of
    /// related resources (`/jsonapi/{type}/{bundle}/{id}/{field}`).
    GetCollection,
    /// POST creating an entity (JSON:API collection, REST `/entity/user`).
    Post,
    /// PATCH of an entity.
    Patch,
    /// DELETE of an entity.
    Delete,
    /// POST/PATCH/DELETE on `/jsonapi/{type}/{bundle}/{id}/relationships/{field}`.
    RelationshipWrite,
    /// `POST /user/login` (any `_format`).
    Login,
    /// `/session/token`.
    SessionToken,
    /// `/user/login_status`.
    LoginStatus,
    /// Anything else: `/jsonapi` entry point, `/user/logout`, 404 pages, OPTIONS, ...
    Other,
}

/// How the request authenticated, as far as the cost is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// It carried `Authorization: Basic …` (right or wrong password): the hash is checked.
    Basic,
    /// A session cookie, or no credentials at all: no hash check.
    Session,
}

/// The bcrypt check of the account's `$2y$10$` password hash, in µs: 42.6 ms
/// (shared/drupal-transcripts/README.md, "Latency").
pub const BCRYPT_US: u64 = 42_600;

/// THE cost table: `(with a session cookie or no credentials, with Basic credentials)` in µs,
/// per request kind. Source: shared/drupal-transcripts/README.md, section "Latency" (PHP 8.2
/// built-in server, single process, SQLite, opcache on, 2-core machine, medians of N
/// sequential requests as `admin`). Every row keeps `basic - session >= BCRYPT_US`.
///
/// - Measured with both auth modes: GET by UUID, POST create, PATCH, POST relationships,
///   DELETE. The session GET by UUID (6.5 ms) was measured "instead of Basic auth" on the
///   same-UUID row, so it is paired with that row (53.2 ms, dynamic cache HIT); the 50
///   different UUIDs row (MISS, 60.8 ms) is not modelled (the emulator has no cache).
/// - GET collection: Basic measured (53.7 ms, `?filter[name]=x` HIT; MISS 59.1 ms and a full
///   page of 50 users 70.7 ms are not modelled); session NOT measured: derived as
///   Basic - 42.6 ms = 11.1 ms.
/// - DELETE is the `user_cancel_block` row (the default cancel method; `user_cancel_delete`
///   measured 62.1 ms with Basic, not modelled separately).
/// - Login, `/session/token`, `/user/login_status` and other requests were NOT measured;
///   these are estimates (Basic = estimate + 42.6 ms):
///   - login: 12.1 ms (an uncached anonymous request, the measured `GET /jsonapi` baseline)
///     plus 42.6 ms (it verifies the posted password against the same bcrypt hash) plus
///     ~5 ms (regenerating and writing the session, updating `users_field_data.login`),
///     about 60 ms;
///   - `/session/token`, `/user/login_status`: tiny uncacheable controllers after a session
///     read, taken as the cheapest measured authenticated request (session GET by UUID,
///     6.5 ms);
///   - other: the uncached anonymous `GET /jsonapi` baseline, 12.1 ms.
const fn table(kind: Kind) -> (u64, u64) {
    match kind {
        // (session, basic)
        Kind::GetIndividual => (6_500, 53_200), // both measured
        Kind::GetCollection => (53_700 - BCRYPT_US, 53_700), // session derived
        Kind::Post => (19_900, 64_100),         // both measured
        Kind::Patch => (21_800, 66_800),        // both measured
        Kind::RelationshipWrite => (19_800, 65_500), // both measured
        Kind::Delete => (14_700, 59_900),       // both measured (user_cancel_block)
        Kind::Login => (60_000, 60_000 + BCRYPT_US), // estimated
        Kind::SessionToken => (6_500, 6_500 + BCRYPT_US), // estimated
        Kind::LoginStatus => (6_500, 6_500 + BCRYPT_US), // estimated
        Kind::Other => (12_100, 12_100 + BCRYPT_US), // estimated
    }
}

/// Drupal's time for one request of `kind` authenticated by `auth`, in µs.
pub const fn cost_us(kind: Kind, auth: Auth) -> u64 {
    let (session, basic) = table(kind);
    match auth {
        Auth::Basic => basic,
        Auth::Session => session,
    }
}

/// [`cost_us`] rounded to whole milliseconds.
pub const fn cost_ms(kind: Kind, auth: Auth) -> u64 {
    (cost_us(kind, auth) + 500) / 1000
}

/// The kind of a request from its method and path (no query).
pub fn classify(method: &str, path: &str) -> Kind {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let read = method == "GET" || method == "HEAD";
    let write_kind = || match method {
        "POST" => Kind::Post,
        "PATCH" => Kind::Patch,
        "DELETE" => Kind::Delete,
        _ => Kind::Other,
    };
    match segs.as_slice() {
        ["session", "token"] => Kind::SessionToken,
        ["user", "login_status"] => Kind::LoginStatus,
        ["user", "login"] if method == "POST" => Kind::Login,
        ["user", "login" | "logout"] => Kind::Other,
        ["user", _uid] if read => Kind::GetIndividual,
        ["user", _] | ["entity", "user"] => write_kind(),
        ["jsonapi", _, _] if read => Kind::GetCollection,
        ["jsonapi", _, _, _] if read => Kind::GetIndividual,
        ["jsonapi", _, _, _, "relationships", _] if read => Kind::GetIndividual,
        ["jsonapi", _, _, _, "relationships", _] => match method {
            "POST" | "PATCH" | "DELETE" => Kind::RelationshipWrite,
            _ => Kind::Other,
        },
        ["jsonapi", _, _, _, _] if read => Kind::GetCollection,
        ["jsonapi", _, _] | ["jsonapi", _, _, _] => write_kind(),
        _ => Kind::Other,
    }
}

/// How a request authenticated, from its headers (lower-case names). Basic credentials win
/// over a session cookie, as in Drupal (`basic_auth` has the higher provider priority).
pub fn auth_of(headers: &[(String, String)]) -> Auth {
    let basic = headers.iter().any(|(k, v)| {
        k == "authorization" && v.len() >= 6 && v.as_bytes()[..6].eq_ignore_ascii_case(b"basic ")
    });
    if basic {
        Auth::Basic
    } else {
        Auth::Session
    }
}

/// The delay for a request under `model`, in µs (0 with [`CostModel::None`]).
pub fn delay_us(model: CostModel, method: &str, path: &str, headers: &[(String, String)]) -> u64 {
    match model {
        CostModel::None => 0,
        CostModel::Drupal => {
            // OPTIONS is answered before authentication (OptionsRequestSubscriber): no hash.
            let auth = if method == "OPTIONS" {
                Auth::Session
            } else {
                auth_of(headers)
            };
            cost_us(classify(method, path), auth)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Kind; 10] = [
        Kind::GetIndividual,
        Kind::GetCollection,
        Kind::Post,
        Kind::Patch,
        Kind::Delete,
        Kind::RelationshipWrite,
        Kind::Login,
        Kind::SessionToken,
        Kind::LoginStatus,
        Kind::Other,
    ];

    #[test]
    fn basic_pays_the_hash_on_every_kind() {
        for k in ALL {
            assert!(
                cost_us(k, Auth::Basic) >= cost_us(k, Auth::Session) + BCRYPT_US,
                "{k:?}"
            );
        }
    }

    #[test]
    fn measured_values() {
        assert_eq!(cost_ms(Kind::GetIndividual, Auth::Basic), 53);
        assert_eq!(cost_ms(Kind::GetIndividual, Auth::Session), 7);
        assert_eq!(cost_ms(Kind::GetCollection, Auth::Basic), 54);
        assert_eq!(cost_ms(Kind::GetCollection, Auth::Session), 11);
        assert_eq!(cost_ms(Kind::Post, Auth::Basic), 64);
        assert_eq!(cost_ms(Kind::Post, Auth::Session), 20);
        assert_eq!(cost_ms(Kind::Patch, Auth::Basic), 67);
        assert_eq!(cost_ms(Kind::Patch, Auth::Session), 22);
        assert_eq!(cost_ms(Kind::RelationshipWrite, Auth::Basic), 66);
        assert_eq!(cost_ms(Kind::RelationshipWrite, Auth::Session), 20);
        assert_eq!(cost_ms(Kind::Delete, Auth::Basic), 60);
        assert_eq!(cost_ms(Kind::Delete, Auth::Session), 15);
    }

    #[test]
    fn classification() {
        let u = "/jsonapi/user/user";
        let id = "/jsonapi/user/user/0b5a1c3e-0000-4000-8000-000000000001";
        assert_eq!(classify("GET", u), Kind::GetCollection);
        assert_eq!(classify("HEAD", u), Kind::GetCollection);
        assert_eq!(classify("POST", u), Kind::Post);
        assert_eq!(classify("GET", id), Kind::GetIndividual);
        assert_eq!(classify("PATCH", id), Kind::Patch);
        assert_eq!(classify("DELETE", id), Kind::Delete);
        assert_eq!(classify("GET", &format!("{id}/roles")), Kind::GetCollection);
        let rel = format!("{id}/relationships/field_scim_groups");
        assert_eq!(classify("GET", &rel), Kind::GetIndividual);
        for m in ["POST", "PATCH", "DELETE"] {
            assert_eq!(classify(m, &rel), Kind::RelationshipWrite);
        }
        assert_eq!(
            classify("GET", "/jsonapi/taxonomy_term/scim_groups"),
            Kind::GetCollection
        );
        assert_eq!(classify("GET", "/jsonapi"), Kind::Other);
        assert_eq!(classify("POST", "/user/login"), Kind::Login);
        assert_eq!(classify("GET", "/user/login"), Kind::Other);
        assert_eq!(classify("GET", "/user/logout"), Kind::Other);
        assert_eq!(classify("GET", "/session/token"), Kind::SessionToken);
        assert_eq!(classify("GET", "/user/login_status"), Kind::LoginStatus);
        assert_eq!(classify("GET", "/user/3"), Kind::GetIndividual);
        assert_eq!(classify("PATCH", "/user/3"), Kind::Patch);
        assert_eq!(classify("DELETE", "/user/3"), Kind::Delete);
        assert_eq!(classify("POST", "/entity/user"), Kind::Post);
        assert_eq!(classify("GET", "/node/1"), Kind::Other);
    }

    #[test]
    fn auth_detection_and_model_off() {
        let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        // Wrong or right password alike: the header is enough.
        assert_eq!(
            auth_of(&h("authorization", "Basic Zm9vOmJhcg==")),
            Auth::Basic
        );
        assert_eq!(
            auth_of(&h("authorization", "basic Zm9vOmJhcg==")),
            Auth::Basic
        );
        assert_eq!(auth_of(&h("authorization", "Bearer x")), Auth::Session);
        assert_eq!(auth_of(&h("cookie", "SESSabc=1")), Auth::Session);
        assert_eq!(auth_of(&[]), Auth::Session);
        let basic = h("authorization", "Basic Zm9vOmJhcg==");
        assert_eq!(
            delay_us(CostModel::None, "GET", "/jsonapi/user/user", &basic),
            0
        );
        assert_eq!(
            delay_us(CostModel::Drupal, "GET", "/jsonapi/user/user", &basic),
            53_700
        );
        assert_eq!(CostModel::parse("drupal"), Some(CostModel::Drupal));
        assert_eq!(CostModel::parse("none"), Some(CostModel::None));
        assert_eq!(CostModel::parse("php"), None);
        assert_eq!(CostModel::default().as_str(), "none");
    }
}
