-- The account data model of FlexiAPI (spaces, accounts and everything they own).
-- Integers are BIGINT so that one Rust type (i64) reads them on PostgreSQL and SQLite alike;
-- timestamps are UTC without zone, second precision.

CREATE TABLE spaces (
    id BIGSERIAL PRIMARY KEY,
    domain VARCHAR(64) NOT NULL UNIQUE,
    host VARCHAR(255) NOT NULL UNIQUE,
    name VARCHAR(255) NOT NULL UNIQUE,
    super BOOLEAN NOT NULL DEFAULT FALSE,
    disable_chat_feature BOOLEAN NOT NULL DEFAULT FALSE,
    disable_meetings_feature BOOLEAN NOT NULL DEFAULT FALSE,
    disable_broadcast_feature BOOLEAN NOT NULL DEFAULT TRUE,
    max_account BIGINT NOT NULL DEFAULT 0,
    hide_settings BOOLEAN NOT NULL DEFAULT FALSE,
    hide_account_settings BOOLEAN NOT NULL DEFAULT FALSE,
    disable_call_recordings_feature BOOLEAN NOT NULL DEFAULT FALSE,
    only_display_sip_uri_username BOOLEAN NOT NULL DEFAULT FALSE,
    assistant_hide_create_account BOOLEAN NOT NULL DEFAULT FALSE,
    assistant_disable_qr_code BOOLEAN NOT NULL DEFAULT FALSE,
    assistant_hide_third_party_account BOOLEAN NOT NULL DEFAULT FALSE,
    max_accounts BIGINT NOT NULL DEFAULT 0,
    expire_at TIMESTAMP NULL,
    copyright_text TEXT NULL,
    intro_registration_text TEXT NULL,
    newsletter_registration_address VARCHAR(255) NULL,
    account_proxy_registrar_address VARCHAR(255) NULL,
    custom_provisioning_entries TEXT NULL,
    custom_provisioning_overwrite_all BOOLEAN NOT NULL DEFAULT FALSE,
    web_panel BOOLEAN NOT NULL DEFAULT TRUE,
    public_registration BOOLEAN NOT NULL DEFAULT TRUE,
    phone_registration BOOLEAN NOT NULL DEFAULT TRUE,
    intercom_features BOOLEAN NOT NULL DEFAULT FALSE,
    carddav_user_credentials BOOLEAN NOT NULL DEFAULT FALSE,
    theme_hue BIGINT NULL,
    logo VARCHAR(255) NULL,
    unique_email BOOLEAN NOT NULL DEFAULT TRUE,
    client_certificate_authentication BOOLEAN NOT NULL DEFAULT FALSE,
    -- seed-era fields kept by decision D6
    account_realm VARCHAR(255) NULL,
    custom_theme BOOLEAN NOT NULL DEFAULT FALSE,
    provisioning_use_linphone_provisioning_header BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);

CREATE TABLE space_digest_authentication_configurations (
    id BIGSERIAL PRIMARY KEY,
    space_id BIGINT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    realm VARCHAR(255) NOT NULL,
    default_password_algorithm VARCHAR(10) NOT NULL DEFAULT 'SHA-256',
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX space_digest_space_id ON space_digest_authentication_configurations(space_id);

CREATE TABLE space_oidc_authentication_configurations (
    id BIGSERIAL PRIMARY KEY,
    space_id BIGINT NOT NULL UNIQUE REFERENCES spaces(id) ON DELETE CASCADE,
    server_url VARCHAR(255) NOT NULL,
    realm VARCHAR(255) NOT NULL,
    sip_identifier VARCHAR(255) NOT NULL DEFAULT 'sip_identity',
    public_key TEXT NULL,
    client_id VARCHAR(255) NULL,
    client_secret VARCHAR(255) NULL,
    auto_provisioning BOOLEAN NULL DEFAULT FALSE,
    role_provisioning VARCHAR(255) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);

CREATE TABLE space_email_servers (
    id BIGSERIAL PRIMARY KEY,
    space_id BIGINT NOT NULL UNIQUE REFERENCES spaces(id) ON DELETE CASCADE,
    host VARCHAR(64) NOT NULL,
    port BIGINT NOT NULL,
    username VARCHAR(128) NULL,
    password VARCHAR(128) NULL,
    from_address VARCHAR(128) NULL,
    from_name VARCHAR(128) NULL,
    signature VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);

CREATE TABLE space_carddav_servers (
    id BIGSERIAL PRIMARY KEY,
    space_id BIGINT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    uri VARCHAR(255) NOT NULL,
    min_characters BIGINT NOT NULL DEFAULT 3,
    results_limit BIGINT NOT NULL DEFAULT 0,
    timeout BIGINT NOT NULL DEFAULT 5,
    delay BIGINT NOT NULL DEFAULT 500,
    fields_for_user_input VARCHAR(255) NULL,
    fields_for_domain VARCHAR(255) NULL,
    use_exact_match_policy BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);

CREATE TABLE accounts (
    id BIGSERIAL PRIMARY KEY,
    username VARCHAR(64) NOT NULL,
    domain VARCHAR(64) NOT NULL REFERENCES spaces(domain) ON DELETE CASCADE ON UPDATE CASCADE,
    email VARCHAR(64) NULL,
    activated BOOLEAN NOT NULL DEFAULT FALSE,
    ip_address VARCHAR(39) NOT NULL,
    user_agent VARCHAR(256) NOT NULL,
    display_name VARCHAR(255) NULL,
    dtmf_protocol VARCHAR(255) NULL,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    phone VARCHAR(64) NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (username, domain)
);
CREATE INDEX accounts_domain ON accounts(domain);
CREATE INDEX accounts_email ON accounts(email);
CREATE INDEX accounts_phone ON accounts(phone);
CREATE INDEX accounts_created_at ON accounts(created_at);

CREATE TABLE accounts_tombstones (
    id BIGSERIAL PRIMARY KEY,
    username VARCHAR(64) NOT NULL,
    domain VARCHAR(64) NOT NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (username, domain)
);

CREATE TABLE passwords (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    password VARCHAR(255) NOT NULL,
    algorithm VARCHAR(10) NOT NULL DEFAULT 'MD5',
    UNIQUE (account_id, algorithm)
);

CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key VARCHAR(160) NOT NULL UNIQUE,
    name VARCHAR(255) NULL,
    ip VARCHAR(45) NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    last_used_at TIMESTAMP NOT NULL,
    expires_after_last_used_minutes BIGINT NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX api_keys_account_id ON api_keys(account_id);

CREATE TABLE opaques (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    nonce VARCHAR(64) NOT NULL,
    opaque VARCHAR(64) NOT NULL,
    ip VARCHAR(45) NOT NULL,
    nc BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX opaques_lookup ON opaques(account_id, opaque);

CREATE TABLE auth_tokens (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token VARCHAR(32) NOT NULL UNIQUE,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);

CREATE TABLE provisioning_tokens (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token VARCHAR(255) NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX provisioning_tokens_token ON provisioning_tokens(token);
CREATE INDEX provisioning_tokens_account ON provisioning_tokens(account_id);

CREATE TABLE recovery_codes (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code VARCHAR(255) NULL,
    phone VARCHAR(64) NULL,
    email VARCHAR(255) NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX recovery_codes_account ON recovery_codes(account_id);

CREATE TABLE phone_change_codes (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code VARCHAR(255) NULL,
    phone VARCHAR(64) NOT NULL,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX phone_change_codes_account ON phone_change_codes(account_id);

CREATE TABLE email_change_codes (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code VARCHAR(255) NULL,
    email VARCHAR(255) NOT NULL,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX email_change_codes_account ON email_change_codes(account_id);

CREATE TABLE account_creation_tokens (
    id BIGSERIAL PRIMARY KEY,
    token VARCHAR(255) NOT NULL,
    pn_provider VARCHAR(255) NULL,
    pn_param VARCHAR(255) NULL,
    pn_prid VARCHAR(255) NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    account_id BIGINT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX account_creation_tokens_token ON account_creation_tokens(token);
CREATE INDEX account_creation_tokens_pn ON account_creation_tokens(pn_provider, pn_param, pn_prid);

CREATE TABLE account_creation_request_tokens (
    id BIGSERIAL PRIMARY KEY,
    token VARCHAR(16) NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    validated_at TIMESTAMP NULL,
    acc_creation_token_id BIGINT NULL REFERENCES account_creation_tokens(id) ON DELETE CASCADE,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX account_creation_request_tokens_token ON account_creation_request_tokens(token);

CREATE TABLE account_recovery_tokens (
    id BIGSERIAL PRIMARY KEY,
    token VARCHAR(255) NOT NULL,
    pn_provider VARCHAR(255) NOT NULL,
    pn_param VARCHAR(255) NOT NULL,
    pn_prid VARCHAR(255) NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    account_id BIGINT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX account_recovery_tokens_token ON account_recovery_tokens(token);

CREATE TABLE reset_password_email_tokens (
    id BIGSERIAL PRIMARY KEY,
    token VARCHAR(16) NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    email VARCHAR(255) NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    ip VARCHAR(45) NULL,
    user_agent VARCHAR(256) NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);

CREATE TABLE account_dictionary_entries (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key VARCHAR(255) NOT NULL,
    value VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (account_id, key)
);

CREATE TABLE account_actions (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key VARCHAR(255) NOT NULL,
    code VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
CREATE INDEX account_actions_account ON account_actions(account_id);

CREATE TABLE account_types (
    id BIGSERIAL PRIMARY KEY,
    key VARCHAR(64) NOT NULL UNIQUE,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);

CREATE TABLE account_account_type (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    account_type_id BIGINT NOT NULL REFERENCES account_types(id) ON DELETE CASCADE,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (account_id, account_type_id)
);

CREATE TABLE contacts (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (account_id, contact_id)
);

CREATE TABLE contacts_lists (
    id BIGSERIAL PRIMARY KEY,
    space_id BIGINT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    title VARCHAR(255) NOT NULL UNIQUE,
    description TEXT NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);

CREATE TABLE account_contacts_list (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    contacts_list_id BIGINT NOT NULL REFERENCES contacts_lists(id) ON DELETE CASCADE,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (account_id, contacts_list_id)
);

CREATE TABLE contacts_list_contact (
    contact_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    contacts_list_id BIGINT NOT NULL REFERENCES contacts_lists(id) ON DELETE CASCADE,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (contact_id, contacts_list_id)
);

CREATE TABLE vcards_storage (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    uuid VARCHAR(45) NOT NULL,
    vcard TEXT NOT NULL,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (account_id, uuid)
);

CREATE TABLE external_accounts (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    username VARCHAR(64) NOT NULL,
    domain VARCHAR(64) NOT NULL,
    password VARCHAR(255) NOT NULL,
    algorithm VARCHAR(10) NOT NULL DEFAULT 'MD5',
    realm VARCHAR(64) NULL,
    registrar VARCHAR(64) NULL,
    outbound_proxy VARCHAR(64) NULL,
    protocol VARCHAR(4) NOT NULL DEFAULT 'UDP',
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (username, domain)
);

CREATE TABLE account_carddav_credentials (
    space_carddav_server_id BIGINT NOT NULL REFERENCES space_carddav_servers(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    username VARCHAR(64) NOT NULL,
    password VARCHAR(255) NOT NULL,
    realm VARCHAR(255) NOT NULL,
    algorithm VARCHAR(10) NOT NULL DEFAULT 'MD5',
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL,
    UNIQUE (space_carddav_server_id, account_id)
);

CREATE TABLE phone_countries (
    code VARCHAR(2) PRIMARY KEY,
    country_code VARCHAR(3) NOT NULL,
    activated BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NULL,
    updated_at TIMESTAMP NULL
);
