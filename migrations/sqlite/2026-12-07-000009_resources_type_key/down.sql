DROP INDEX resources_type_key;
