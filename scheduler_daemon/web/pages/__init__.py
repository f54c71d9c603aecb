"""The console's pages: each calls the verbs, as the API's handlers do, and holds no SQL."""
