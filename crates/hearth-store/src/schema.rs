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
    resources (resource_type, id) {
        resource_type -> Text,
        id -> Text,
        version_id -> BigInt,
        last_updated -> BigInt,
        deleted -> Bool,
        current_seq -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(resource_versions, resources);
