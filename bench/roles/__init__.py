"""Speaker-role inference benchmark: roles hidden on Harper Valley Bank and TweetSumm, then inferred."""
