//! Spaces: one per SIP domain, resolved from the HTTP host of each request.

use chrono::NaiveDateTime;

use crate::db::Db;
use crate::with_db;

/// A row of `spaces`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Space {
    pub id: i64,
    pub domain: String,
    pub host: String,
    pub name: String,
    #[sqlx(rename = "super")]
    pub is_super: bool,
    pub disable_chat_feature: bool,
    pub disable_meetings_feature: bool,
    pub disable_broadcast_feature: bool,
    pub max_account: i64,
    pub hide_settings: bool,
    pub hide_account_settings: bool,
    pub disable_call_recordings_feature: bool,
    pub only_display_sip_uri_username: bool,
    pub assistant_hide_create_account: bool,
    pub assistant_disable_qr_code: bool,
    pub assistant_hide_third_party_account: bool,
    pub max_accounts: i64,
    pub expire_at: Option<NaiveDateTime>,
    pub copyright_text: Option<String>,
    pub intro_registration_text: Option<String>,
    pub newsletter_registration_address: Option<String>,
    pub account_proxy_registrar_address: Option<String>,
    pub custom_provisioning_entries: Option<String>,
    pub custom_provisioning_overwrite_all: bool,
    pub web_panel: bool,
    pub public_registration: bool,
    pub phone_registration: bool,
    pub intercom_features: bool,
    pub carddav_user_credentials: bool,
    pub theme_hue: Option<i64>,
    pub logo: Option<String>,
    pub unique_email: bool,
    pub client_certificate_authentication: bool,
    pub account_realm: Option<String>,
    pub custom_theme: bool,
    pub provisioning_use_linphone_provisioning_header: bool,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
}

/// The digest configuration of a space (`space_digest_authentication_configurations`).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DigestConfiguration {
    pub realm: String,
    pub default_password_algorithm: String,
}

impl Space {
    /// Expired when `expire_at` is set and its date has begun (the column is handled as a date).
    pub fn is_expired(&self, now: NaiveDateTime) -> bool {
        self.expire_at
            .is_some_and(|expire| expire.date().and_hms_opt(0, 0, 0).unwrap_or(expire) <= now)
    }

    /// The space whose `host` is `host` (already lower-cased, without port).
    pub async fn find_by_host(db: &Db, host: &str) -> Result<Option<Space>, sqlx::Error> {
        with_db!(db, pool => sqlx::query_as("SELECT * FROM spaces WHERE host = $1")
            .bind(host)
            .fetch_optional(pool)
            .await)
    }

    /// The space of a SIP domain.
    pub async fn find_by_domain(db: &Db, domain: &str) -> Result<Option<Space>, sqlx::Error> {
        with_db!(db, pool => sqlx::query_as("SELECT * FROM spaces WHERE domain = $1")
            .bind(domain)
            .fetch_optional(pool)
            .await)
    }

    /// The digest configuration of this space, if any (the oldest row, as upstream uses "the" one).
    pub async fn digest_configuration(
        &self,
        db: &Db,
    ) -> Result<Option<DigestConfiguration>, sqlx::Error> {
        with_db!(db, pool => sqlx::query_as(
            "SELECT realm, default_password_algorithm FROM space_digest_authentication_configurations \
             WHERE space_id = $1 ORDER BY id LIMIT 1")
            .bind(self.id)
            .fetch_optional(pool)
            .await)
    }

    /// Creates or updates a space by domain (`flexiapi spaces create-update`); returns it.
    pub async fn create_or_update(
        db: &Db,
        domain: &str,
        host: &str,
        name: &str,
        is_super: bool,
    ) -> Result<Space, sqlx::Error> {
        let now = crate::time::now();
        with_db!(db, pool => {
            let mut tx = crate::db::begin_write(pool).await?;
            let updated = sqlx::query(
                "UPDATE spaces SET host = $2, name = $3, super = $4, updated_at = $5 WHERE domain = $1")
                .bind(domain).bind(host).bind(name).bind(is_super).bind(now)
                .execute(&mut *tx).await?;
            if updated.rows_affected() == 0 {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO spaces (domain, host, name, super, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id")
                    .bind(domain).bind(host).bind(name).bind(is_super).bind(now)
                    .fetch_one(&mut *tx).await?;
                // Upstream backfills one digest configuration per space, realm = domain.
                sqlx::query(
                    "INSERT INTO space_digest_authentication_configurations \
                     (space_id, realm, default_password_algorithm, created_at, updated_at) \
                     VALUES ($1, $2, 'SHA-256', $3, $3)")
                    .bind(id).bind(domain).bind(now)
                    .execute(&mut *tx).await?;
            }
            let space = sqlx::query_as("SELECT * FROM spaces WHERE domain = $1")
                .bind(domain).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(space)
        })
    }
}

/// The DIGEST realm of the accounts of `domain` (decision D6): the space's `account_realm` when set, else its
/// digest configuration realm, else the domain itself.
pub async fn realm_for_domain(db: &Db, domain: &str) -> Result<String, sqlx::Error> {
    let Some(space) = Space::find_by_domain(db, domain).await? else {
        return Ok(domain.to_owned());
    };
    if let Some(realm) = space.account_realm.clone().filter(|r| !r.is_empty()) {
        return Ok(realm);
    }
    Ok(space
        .digest_configuration(db)
        .await?
        .map_or_else(|| domain.to_owned(), |c| c.realm))
}
