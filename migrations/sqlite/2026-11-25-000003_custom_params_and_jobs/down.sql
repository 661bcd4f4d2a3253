DROP TABLE jobs;
DROP TABLE custom_search_params;
