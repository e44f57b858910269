# Shared by reproduce.sh and reports.sh. splice_claims TABLE: README.md's claims table (between
# its `<!-- claims:start -->` / `<!-- claims:end -->` markers) replaced by the file TABLE.
splice_claims() {
  local table=$1
  if grep -q '<!-- claims:start -->' README.md && grep -q '<!-- claims:end -->' README.md; then
    awk -v table="$table" '
      /<!-- claims:start -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
      /<!-- claims:end -->/ { skip = 0 }
      !skip { print }
    ' README.md > README.md.tmp && mv README.md.tmp README.md
  fi
}
