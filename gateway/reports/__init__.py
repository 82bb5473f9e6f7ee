"""What auditors take away: the incident packet and its JSON, CSV and PDF exports."""
