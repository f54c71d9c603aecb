"""The API's endpoints, one module per resource; each handler calls the verbs and no SQL."""
