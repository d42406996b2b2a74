"""Personal data: detection (`pii`), reviewer masking (`mask`). Pure functions, no database."""
