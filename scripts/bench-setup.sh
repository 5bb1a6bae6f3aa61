#!/usr/bin/env bash
# bench-setup.sh GROUP ARGS...: what a bench recipe installs before it runs
# (setup.sh, and setup.sh GROUP when GROUP is given), skipped when ARGS ask
# for the bench's --help, which needs no reference installed.
group=$1
shift
for a in "$@"; do
  case "$a" in
    # Every spelling Go's flag package reads as help (-h, --h, -help,
    # --help, and each with =true).
    -h|--h|-help|--help|-h=*|--h=*|-help=*|--help=*) exit 0 ;;
  esac
done
bash scripts/setup.sh || exit
if [ -n "$group" ]; then
  bash scripts/setup.sh "$group" || echo "python3-$group could not be installed: the PyTorch reference will say it was skipped"
fi
exit 0
