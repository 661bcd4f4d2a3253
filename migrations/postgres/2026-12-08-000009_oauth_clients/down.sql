DROP TABLE client_assertions;
DROP TABLE oauth_clients;
