"""The pages in Debian's headless Chromium (Playwright), decoding real video."""
