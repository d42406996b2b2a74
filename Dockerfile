# One image for every Postcall process: `postcall worker`, `postcall serve`, `postcall db upgrade`, ...
# Build: docker build -t postcall .      Run: see docker-compose.yml and docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/postcall

# Dependencies first, from pyproject.toml alone (a stub package stands in for the code), so a code change
# does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
    && pip install --editable . \
    && rm -rf app

# The code, installed in place: prompts/, migrations/ and alembic.ini are found beside app/.
COPY app ./app
COPY prompts ./prompts
COPY migrations ./migrations
COPY alembic.ini ./
COPY samples ./samples
RUN pip install --no-deps --editable . \
    && useradd --create-home --uid 10001 postcall \
    && mkdir var && chown postcall var

USER postcall
EXPOSE 8000
ENTRYPOINT ["postcall"]
CMD ["worker"]
