DROP TABLE resource_text;
CREATE VIRTUAL TABLE resource_text USING fts5(
    narrative,
    content,
    tokenize = 'unicode61 remove_diacritics 2',
    detail = column
);
DROP INDEX resources_type_updated;
