#!/usr/bin/env bash
# The AWS cluster's firewall, once per VPC: `examples/aws-security-group.sh REGION SSH_CIDR [NAME]`
# (seconds; needs the aws CLI with your credentials). Prints the group id for cluster.yaml's
# `security_group`.
#
# One security group for every node of cluster.yaml. Inbound: SSH (tcp 22) from SSH_CIDR (your
# machine's public address, e.g. 203.0.113.7/32) and any traffic from members of the group itself
# (Ray's GCS, raylets, object managers, workers and the nodes' SSH between each other); nothing
# else. The dashboard, Jobs API and MLflow are on the head's loopback and are reached through SSH.
# Outbound: AWS's default (all), for image pulls, pip and S3.
#
#   --dry-run   print the aws commands instead of running them (no AWS call, no credentials)
#   US8K_VPC_ID the VPC (default: the region's default VPC, the one `ray up` uses)
set -euo pipefail

usage="usage: $0 [--dry-run] REGION SSH_CIDR [GROUP_NAME]   e.g. $0 us-east-1 203.0.113.7/32"
dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
if [ $# -lt 2 ] || [ $# -gt 3 ]; then echo "$usage" >&2; exit 2; fi
region=$1 cidr=$2 name=${3:-us8k-gpu-cluster}

# An IPv4 CIDR, and not half the internet: SSH is the cluster's only door.
if ! [[ $cidr =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})$ ]]; then
  echo "error: SSH_CIDR '$cidr' is not an IPv4 CIDR such as 203.0.113.7/32 (your public IP: curl -s https://checkip.amazonaws.com)" >&2
  exit 2
fi
for octet in "${BASH_REMATCH[@]:1:4}"; do
  if [ "$octet" -gt 255 ]; then echo "error: SSH_CIDR '$cidr' has an octet above 255" >&2; exit 2; fi
done
prefix=${BASH_REMATCH[5]}
if [ "$prefix" -gt 32 ] || [ "$prefix" -lt 16 ]; then
  echo "error: SSH_CIDR '$cidr' must be /16 to /32: it is who may SSH into the cluster (your address, or your office's range)" >&2
  exit 2
fi

# Every AWS call goes through here; --dry-run prints it (one shell-quoted line on stdout) and
# stands a placeholder in for its output.
aws_call() {
  local placeholder=$1; shift
  if [ "$dry_run" = 1 ]; then
    printf '%q ' aws --region "$region" "$@"; printf '\n'
    printf '%s' "$placeholder" >&3
  else
    aws --region "$region" "$@" >&3
  fi
}

vpc=${US8K_VPC_ID:-$(aws_call vpc-DRYRUN ec2 describe-vpcs --filters Name=isDefault,Values=true \
  --query 'Vpcs[0].VpcId' --output text 3>&1 1>&2)}
if [ -z "$vpc" ] || [ "$vpc" = None ]; then
  echo "error: no default VPC in $region: set US8K_VPC_ID" >&2; exit 1
fi
group=$(aws_call sg-DRYRUN ec2 create-security-group --group-name "$name" --vpc-id "$vpc" \
  --description "us8k Ray cluster: SSH from $cidr, all traffic between its nodes" \
  --query GroupId --output text 3>&1 1>&2)
aws_call "" ec2 authorize-security-group-ingress --group-id "$group" --ip-permissions \
  "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=$cidr,Description=ssh}]" 3>/dev/null 1>&2
aws_call "" ec2 authorize-security-group-ingress --group-id "$group" --ip-permissions \
  "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$group,Description=between-cluster-nodes}]" 3>/dev/null 1>&2
echo "$group"
