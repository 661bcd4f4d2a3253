-- _id and _lastUpdated are answered by the resources table itself, not by
-- index rows: sorting and searching by lastUpdated need this index.
CREATE INDEX resources_type_updated ON resources (resource_type, last_updated);

-- The full-text index keeps no copy of the text it indexes (contentless):
-- only which resources and columns hold a term. The store rebuilds its rows
-- when it opens (the index version changed with this migration).
DROP TABLE resource_text;
CREATE VIRTUAL TABLE resource_text USING fts5(
    narrative,
    content,
    tokenize = 'unicode61 remove_diacritics 2',
    detail = column,
    content = '',
    contentless_delete = 1
);
