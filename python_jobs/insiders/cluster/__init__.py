"""The clustering job: read the feature mart, fit or score segments, name them, write labels back."""
