//! The diesel schema, one definition for every backend
//! (`migrations/sqlite/` creates it).

diesel::table! {
    resource_versions (seq) {
        seq -> BigInt,
        resource_type -> Text,
        id -> Text,
        version_id -> BigInt,
        last_updated -> BigInt,
        method -> Text,
        body -> Nullable<Binary>,
    }
}

diesel::table! {
    resources (res_key) {
        res_key -> BigInt,
        resource_type -> Text,
        id -> Text,
        version_id -> BigInt,
        last_updated -> BigInt,
        deleted -> Bool,
        current_seq -> BigInt,
    }
}

diesel::table! {
    idx_string (res_key, n) {
        res_key -> BigInt,
        n -> BigInt,
        param -> Text,
        grp -> Nullable<BigInt>,
        norm -> Text,
        exact -> Text,
    }
}

diesel::table! {
    idx_token (res_key, n) {
        res_key -> BigInt,
        n -> BigInt,
        param -> Text,
        grp -> Nullable<BigInt>,
        system -> Nullable<Text>,
        code -> Nullable<Text>,
        text -> Nullable<Text>,
        type_system -> Nullable<Text>,
        type_code -> Nullable<Text>,
        implicit -> Bool,
        repeated -> Bool,
    }
}

diesel::table! {
    idx_reference (res_key, n) {
        res_key -> BigInt,
        n -> BigInt,
        param -> Text,
        grp -> Nullable<BigInt>,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        target_version -> Nullable<Text>,
        url -> Nullable<Text>,
        ident_system -> Nullable<Text>,
        ident_value -> Nullable<Text>,
    }
}

diesel::table! {
    idx_date (res_key, n) {
        res_key -> BigInt,
        n -> BigInt,
        param -> Text,
        grp -> Nullable<BigInt>,
        lo -> BigInt,
        hi -> BigInt,
    }
}

diesel::table! {
    idx_number (res_key, n) {
        res_key -> BigInt,
        n -> BigInt,
        param -> Text,
        grp -> Nullable<BigInt>,
        value -> Double,
    }
}

diesel::table! {
    idx_quantity (res_key, n) {
        res_key -> BigInt,
        n -> BigInt,
        param -> Text,
        grp -> Nullable<BigInt>,
        value -> Double,
        system -> Nullable<Text>,
        code -> Nullable<Text>,
        unit -> Nullable<Text>,
        canonical_value -> Nullable<Double>,
        canonical_code -> Nullable<Text>,
    }
}

diesel::table! {
    idx_uri (res_key, n) {
        res_key -> BigInt,
        n -> BigInt,
        param -> Text,
        grp -> Nullable<BigInt>,
        uri -> Text,
    }
}

diesel::table! {
    store_meta (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    resource_versions,
    resources,
    idx_string,
    idx_token,
    idx_reference,
    idx_date,
    idx_number,
    idx_quantity,
    idx_uri,
);
