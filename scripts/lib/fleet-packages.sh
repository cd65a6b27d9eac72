# Sourced by the fleet suites: installs, from Debian's packages, what a
# fleet runs beside MariaDB and Redis (scripts/fleet checks the same list
# before it starts anything).
fleet_packages() {
  local missing=()
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    if [ -z "${SESAME_APT_UPDATED:-}" ]; then apt-get update -qq; export SESAME_APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
