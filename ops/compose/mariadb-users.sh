#!/bin/bash
# Run by the mariadb image once, on a fresh data directory (/docker-entrypoint-initdb.d), with
# docker_process_sql from its entrypoint: one user per service that uses MySQL, with no grant
# yet. Compose's migrate job makes the schema as root, then gives each user exactly its tables
# (MYSQL_SERVICE_USERS, src/storage/mysql/grants.ts): rows of those tables only, no DDL, no
# other database. The passwords come from .env (hex: they are put in SQL and in URLs as they are).
set -eu
for pw in "$SHARDCHAT_GATE_DB_PASSWORD" "$SHARDCHAT_CHAT_DB_PASSWORD"; do
  [[ "$pw" =~ ^[A-Za-z0-9]{16,}$ ]] || { echo "database passwords must be 16+ letters or digits (openssl rand -hex 24)" >&2; exit 1; }
done
docker_process_sql --database=mysql <<SQL
CREATE DATABASE IF NOT EXISTS shardchat CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'shardchat_gate'@'%' IDENTIFIED BY '${SHARDCHAT_GATE_DB_PASSWORD}';
CREATE USER IF NOT EXISTS 'shardchat_chat'@'%' IDENTIFIED BY '${SHARDCHAT_CHAT_DB_PASSWORD}';
SQL
