# Prints pt-query-digest's own fingerprint (QueryRewriter::fingerprint, loaded from
# /usr/bin/pt-query-digest) of each NUL-separated query on stdin, NUL-separated.
require "/usr/bin/pt-query-digest";
my $qr = QueryRewriter->new(QueryParser => QueryParser->new);
my $all = do { local $/; <STDIN> };
for my $q (split /\0/, $all) { print $qr->fingerprint($q), "\0"; }
