//! Routes of the account resources (api-accounts.md §2.10–2.22): devices, contacts, contacts lists, account
//! types, actions, dictionary, external accounts, vCards storage, push notifications, messages, and the
//! non-API companion pages (provisioning XML and QR codes, vCard exports, `/vcards-storage`).
//!
//! [`routes`] is merged by [`crate::Api::router`] next to the account routes, under the same `json_body` layer
//! and, in the binary, under `resolve_space`; the non-API paths have no `/api` prefix.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use flexiapi_auth::Authenticator;
use flexiapi_core::Config;

use crate::state::AppState;
use crate::{
    access, account_type, action, contacts, contacts_list, devices, dictionary, external_account,
    messages, provisioning, push, vcards_storage,
};

/// Every route of the resources, each behind its access level.
pub fn routes(config: &Config, auth: &Arc<Authenticator>) -> Router<AppState> {
    let user = Router::new()
        .route("/api/accounts/me/devices", get(devices::my_devices))
        .route(
            "/api/accounts/me/devices/{uuid}",
            axum::routing::delete(devices::delete_my_device),
        )
        .route("/api/accounts/me/contacts", get(contacts::my_contacts))
        .route("/api/accounts/me/contacts/{sip}", get(contacts::my_contact))
        .route(
            "/api/accounts/me/vcards-storage",
            get(vcards_storage::my_index).post(vcards_storage::my_store),
        )
        .route(
            "/api/accounts/me/vcards-storage/{uuid}",
            get(vcards_storage::my_show)
                .put(vcards_storage::my_update)
                .patch(vcards_storage::my_update)
                .delete(vcards_storage::my_destroy),
        )
        .route("/api/push_notification", post(push::notify))
        .route("/contacts/vcard", get(contacts::vcards))
        .route("/contacts/vcard/{sip}", get(contacts::vcard))
        .route("/vcards-storage", get(vcards_storage::text_index))
        .route("/vcards-storage/", get(vcards_storage::text_index))
        .route("/vcards-storage/{uuid}", get(vcards_storage::text_show))
        .route("/provisioning/me", get(provisioning::me));

    // The provisioning token (or auth token) is the credential of these routes.
    let public = Router::new()
        .route("/provisioning", get(provisioning::base))
        .route("/provisioning/", get(provisioning::base))
        .route(
            "/provisioning/documentation",
            get(provisioning::documentation),
        )
        .route(
            "/provisioning/auth_token/{auth_token}",
            get(provisioning::by_auth_token),
        )
        .route(
            "/provisioning/qrcode/{provisioning_token}",
            get(provisioning::qrcode),
        )
        .route(
            "/provisioning/{provisioning_token}",
            get(provisioning::by_token),
        );

    let mut admin = Router::new()
        .route(
            "/api/accounts/{id}/vcards-storage",
            get(vcards_storage::admin_index).post(vcards_storage::admin_store),
        )
        .route(
            "/api/accounts/{id}/vcards-storage/{uuid}",
            get(vcards_storage::admin_show)
                .put(vcards_storage::admin_update)
                .patch(vcards_storage::admin_update)
                .delete(vcards_storage::admin_destroy),
        )
        .route("/api/accounts/{id}/devices", get(devices::account_devices))
        .route(
            "/api/accounts/{id}/devices/{uuid}",
            axum::routing::delete(devices::delete_account_device),
        )
        .route("/api/accounts/{id}/contacts", get(contacts::index))
        .route(
            "/api/accounts/{id}/contacts/{contact_id}",
            get(contacts::show)
                .post(contacts::add)
                .delete(contacts::remove),
        )
        .route(
            "/api/contacts_lists",
            get(contacts_list::index).post(contacts_list::store),
        )
        .route(
            "/api/contacts_lists/{id}",
            get(contacts_list::show)
                .put(contacts_list::update)
                .patch(contacts_list::update)
                .delete(contacts_list::destroy),
        )
        .route(
            "/api/contacts_lists/{id}/contacts/{contact_id}",
            post(contacts_list::add_contact).delete(contacts_list::remove_contact),
        )
        .route(
            "/api/accounts/{id}/contacts_lists/{list_id}",
            post(contacts_list::attach).delete(contacts_list::detach),
        )
        .route(
            "/api/account_types",
            get(account_type::index).post(account_type::store),
        )
        .route(
            "/api/account_types/{id}",
            get(account_type::show)
                .put(account_type::update)
                .patch(account_type::update)
                .delete(account_type::destroy),
        )
        .route(
            "/api/accounts/{id}/types/{type_id}",
            post(account_type::attach).delete(account_type::detach),
        )
        .route(
            "/api/accounts/{id}/actions",
            get(action::index).post(action::store),
        )
        .route(
            "/api/accounts/{id}/actions/{action_id}",
            get(action::show)
                .put(action::update)
                .patch(action::update)
                .delete(action::destroy),
        )
        .route(
            "/api/accounts/{id}/dictionary",
            get(dictionary::index).delete(dictionary::clear),
        )
        .route(
            "/api/accounts/{id}/dictionary/{key}",
            get(dictionary::show)
                .post(dictionary::store)
                .delete(dictionary::destroy),
        )
        .route(
            "/api/accounts/{id}/external",
            get(external_account::show)
                .post(external_account::store)
                .delete(external_account::destroy),
        );
    if config.linphone_daemon_unix_path.is_some() {
        admin = admin.route("/api/messages", post(messages::send));
    }

    Router::new()
        .merge(public)
        .merge(access::user(user, auth))
        .merge(access::admin(admin, auth))
}
