"""Tenancy: organizations, projects, users and API keys (store), key and password
hashing (credentials), and authentication of a caller into a Principal (auth). May
import core and storage."""
